"""The spawn form in a browser: a slice the namespace quota cannot hold is shown disabled with its
reason, the remaining quota is shown, and "Other slice…" opens the typed-slice field.
Writes artifacts/ui/hub-spawn-form.png."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.support.hub_process import PASSWORD
from tests.ui.conftest import ARTIFACTS

if TYPE_CHECKING:
    from tests.support.hub_process import RunningHub

pytestmark = pytest.mark.ui
SELECT = "#profile-option-bitfusion-gpu--gpu"


def test_the_spawn_form_shows_an_unavailable_slice_with_its_reason(
    quota_hub: RunningHub, page: Any
) -> None:
    # given alice logged in through the login page
    page.goto(f"{quota_hub.url}/hub/login")
    page.fill("#username_input", "alice")
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    page.wait_for_url("**/hub/spawn**", timeout=60_000)

    # when she picks the GPU profile
    page.click("#profile-item-bitfusion-gpu")

    # then half a GPU is disabled, its reason is listed, and the remaining quota is shown
    options = page.locator(f"{SELECT} option")
    assert options.filter(has_text="1 GPU × 25 %").first.is_enabled()
    half = options.filter(has_text="1 GPU × 50 %").first
    assert half.is_disabled()
    reasons = page.locator(".bf-unavailable li")
    assert "costs 50" in reasons.first.inner_text()
    assert "only 40 of 40 remain" in reasons.first.inner_text()
    assert "Quota: 0.4 of 0.4 GPUs remain" in page.locator(".bf-description").last.inner_text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("#spawn_form").screenshot(path=str(ARTIFACTS / "hub-spawn-form.png"))

    # and "Other slice…" opens the free-form field, named for submission instead of the list
    page.select_option(SELECT, "unlisted-choice")
    typed = page.locator("#profile-option-bitfusion-gpu--gpu--unlisted-choice")
    assert typed.is_visible()
    assert typed.get_attribute("name") == "profile-option-bitfusion-gpu--gpu--unlisted-choice"
    assert page.locator(SELECT).get_attribute("name") is None
