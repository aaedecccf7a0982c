"""The dra backends: a slice becomes a ResourceClaimTemplate the kube-scheduler allocates."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given

from bf_jupyter.backends import SliceRefused, get_backend
from bf_jupyter.backends.base import Offer
from bf_jupyter.backends.dra import DraBackend
from bf_jupyter.slice import Filter, GpuSlice
from tests.unit.backends.strategies import any_slices

GIB = 1 << 30
OFFER_40G = Offer(per_gpu_memory_bytes=40 * GIB)


def exactly(backend: str, text: str, offer: Offer = OFFER_40G) -> dict[str, Any]:
    devices = get_backend(backend).devices(GpuSlice.parse(text), offer)  # type: ignore[attr-defined]
    (request,) = devices["requests"]
    assert request["name"] == "gpu"
    return dict(request["exactly"])


def config(backend: str, text: str, offer: Offer = OFFER_40G) -> dict[str, Any] | None:
    devices = get_backend(backend).devices(GpuSlice.parse(text), offer)  # type: ignore[attr-defined]
    configs = devices.get("config") or []
    if not configs:
        return None
    (entry,) = configs
    assert entry["requests"] == ["gpu"]
    assert entry["opaque"]["driver"] == "gpu.nvidia.com"
    parameters = entry["opaque"]["parameters"]
    assert (parameters["apiVersion"], parameters["kind"]) == (
        "resource.nvidia.com/v1beta1",
        "GpuConfig",
    )
    return dict(parameters["sharing"])


def test_whole_gpus_are_an_exact_count_of_the_gpu_class() -> None:
    assert exactly("dra", "2") == {
        "deviceClassName": "gpu.nvidia.com",
        "allocationMode": "ExactCount",
        "count": 2,
    }
    assert config("dra", "2") is None


def test_the_rendering_is_a_template_the_pod_and_container_name() -> None:
    rendering = get_backend("dra").render(GpuSlice.parse("1"))
    (template,) = rendering.objects
    assert template["apiVersion"] == "resource.k8s.io/v1"
    assert template["kind"] == "ResourceClaimTemplate"
    name = template["metadata"]["name"]
    assert rendering.pod_claims == ({"name": "gpu", "resourceClaimTemplateName": name},)
    assert rendering.container_claims == ({"name": "gpu"},)
    assert not rendering.limits and not rendering.scheduler_name


def test_naming_for_a_pod_renames_the_template_and_its_reference() -> None:
    labels = {"bf-jupyter/kernel-id": "k1"}
    named = get_backend("dra").render(GpuSlice.parse("1")).named("bf-kernel-k1-1", "team", labels)
    (template,) = named.objects
    assert template["metadata"] == {"name": "bf-kernel-k1-1", "namespace": "team", "labels": labels}
    assert template["spec"]["metadata"] == {"labels": labels}  # the claims made from it
    assert named.pod_claims == ({"name": "gpu", "resourceClaimTemplateName": "bf-kernel-k1-1"},)


def test_rendering_applies_claims_to_the_pod_and_container() -> None:
    spec: dict[str, Any] = {}
    container: dict[str, Any] = {"resources": {"requests": {"cpu": "1"}}}
    get_backend("dra").render(GpuSlice.parse("1")).apply(spec, {}, container)
    assert spec["resourceClaims"] == [{"name": "gpu", "resourceClaimTemplateName": "bf-gpu-slice"}]
    assert container["resources"] == {"requests": {"cpu": "1"}, "claims": [{"name": "gpu"}]}


def test_filters_become_cel_selectors_on_the_drivers_attributes() -> None:
    found = exactly("dra", '1 device.name="NVIDIA A100-SXM4-40GB" device.uuid!=GPU-1')
    assert found["selectors"] == [
        {
            "cel": {
                "expression": 'device.attributes["gpu.nvidia.com"].productName == "NVIDIA A100-SXM4-40GB"'
            }
        },
        {"cel": {"expression": 'device.attributes["gpu.nvidia.com"].uuid != "GPU-1"'}},
    ]


def test_a_filter_value_cannot_escape_its_cel_string() -> None:
    gpu_slice = GpuSlice(1, filters=(Filter("device.name", 'a"||true||"b'),))
    devices = DraBackend().devices(gpu_slice)
    (selector,) = devices["requests"][0]["exactly"]["selectors"]
    assert selector["cel"]["expression"].endswith('== "a\\"||true||\\"b"')


def test_an_unknown_filter_is_refused_naming_what_works() -> None:
    with pytest.raises(SliceRefused, match=r"filter server\.addr=10\.0\.0\.1 cannot be honoured"):
        exactly("dra", "1 server.addr=10.0.0.1")


def test_a_mig_slice_asks_the_mig_class_for_its_profile() -> None:
    assert exactly("dra", "2xmig-1g.10gb") == {
        "deviceClassName": "mig.nvidia.com",
        "allocationMode": "ExactCount",
        "count": 2,
        "selectors": [
            {"cel": {"expression": 'device.attributes["gpu.nvidia.com"].profile == "1g.10gb"'}}
        ],
    }
    assert (
        get_backend("dra").isolation_of(GpuSlice.parse("mig-1g.10gb")).label == "hardware partition"
    )


def test_a_memory_slice_selects_big_enough_devices_and_caps_them_with_mps() -> None:
    found = exactly("dra", "2x8Gi cores=30")
    assert found["count"] == 2
    assert found["selectors"] == [
        {
            "cel": {
                "expression": 'device.capacity["gpu.nvidia.com"].memory.compareTo(quantity("8Gi")) >= 0'
            }
        }
    ]
    assert "capacity" not in found
    assert config("dra", "2x8Gi cores=30") == {
        "strategy": "MPS",
        "mpsConfig": {"defaultActiveThreadPercentage": 30, "defaultPinnedDeviceMemoryLimit": "8Gi"},
    }
    label = get_backend("dra").isolation_of(GpuSlice.parse("1x8Gi")).label
    assert label == "device to itself, capped by MPS"


def test_a_percent_slice_is_an_mps_thread_and_memory_share() -> None:
    assert config("dra", "1x25%") == {
        "strategy": "MPS",
        "mpsConfig": {
            "defaultActiveThreadPercentage": 25,
            "defaultPinnedDeviceMemoryLimit": "10Gi",
        },
    }
    # with no known GPU memory, only the thread share
    assert config("dra", "1x25%", Offer()) == {
        "strategy": "MPS",
        "mpsConfig": {"defaultActiveThreadPercentage": 25},
    }


def test_a_shared_slice_is_one_time_sliced_device() -> None:
    assert config("dra", "1xshared") == {
        "strategy": "TimeSlicing",
        "timeSlicingConfig": {"interval": "Default"},
    }
    assert get_backend("dra").isolation_of(GpuSlice.parse("1xshared")).label == "no isolation"
    with pytest.raises(SliceRefused, match=r"gpu-amount 2 .*ask for one shared device, 1xshared"):
        exactly("dra", "2xshared")


def test_consumable_capacity_turns_memory_into_a_capacity_request() -> None:
    found = exactly("dra-consumable-capacity", "1x8Gi")
    assert found["capacity"] == {"requests": {"memory": "8Gi"}}
    assert "selectors" not in found
    assert exactly("dra-consumable-capacity", "1x25%")["capacity"] == {
        "requests": {"memory": "10Gi"}
    }
    backend = get_backend("dra-consumable-capacity")
    label = backend.isolation_of(GpuSlice.parse("1x8Gi")).label
    assert label == "memory accounted by the scheduler, capped by MPS"


def test_consumable_capacity_keeps_several_devices_distinct() -> None:
    devices = get_backend("dra-consumable-capacity").devices(GpuSlice.parse("2x8Gi"))  # type: ignore[attr-defined]
    assert devices["constraints"] == [
        {"requests": ["gpu"], "distinctAttribute": "gpu.nvidia.com/uuid"}
    ]


def test_consumable_capacity_refuses_a_percent_of_an_unknown_memory() -> None:
    with pytest.raises(SliceRefused, match="gpu-percent 50% cannot become a memory capacity"):
        exactly("dra-consumable-capacity", "1x50%", Offer())
    with pytest.raises(SliceRefused, match="shared"):
        exactly("dra-consumable-capacity", "1xshared")


def test_the_device_class_is_configurable() -> None:
    backend = DraBackend().with_device_class("a100.example.com")
    devices = backend.devices(GpuSlice.parse("1"))
    assert devices["requests"][0]["exactly"]["deviceClassName"] == "a100.example.com"
    (charge,) = backend.price(GpuSlice.parse("1"))
    assert charge.quota_keys == ("a100.example.com.deviceclass.resource.k8s.io/devices",)


def test_price_counts_devices_per_class_never_memory() -> None:
    (charge,) = get_backend("dra").price(GpuSlice.parse("2x8Gi"), OFFER_40G)
    assert (charge.resource, charge.amount, charge.unit) == ("gpu.nvidia.com", 2, "devices")
    assert charge.quota_keys == ("gpu.nvidia.com.deviceclass.resource.k8s.io/devices",)
    assert "counts devices, not memory" in charge.enforced_by
    (mig,) = get_backend("dra").price(GpuSlice.parse("mig-1g.10gb"))
    assert mig.quota_keys == ("mig.nvidia.com.deviceclass.resource.k8s.io/devices",)
    assert get_backend("dra").quota_keys() == (
        "gpu.nvidia.com.deviceclass.resource.k8s.io/devices",
        "mig.nvidia.com.deviceclass.resource.k8s.io/devices",
    )


@given(any_slices)
def test_any_slice_renders_or_is_refused_in_one_sentence(gpu_slice: GpuSlice) -> None:
    for name in ("dra", "dra-consumable-capacity"):
        backend = get_backend(name)
        try:
            rendering = backend.render(gpu_slice, OFFER_40G)
        except SliceRefused as refused:
            assert "\n" not in str(refused) and refused.field
            with pytest.raises(SliceRefused):
                backend.price(gpu_slice, OFFER_40G)
            continue
        (template,) = rendering.objects
        (request,) = template["spec"]["spec"]["devices"]["requests"]
        (charge,) = backend.price(gpu_slice, OFFER_40G)
        assert charge.amount == request["exactly"]["count"] == gpu_slice.amount


def test_the_request_in_words_names_class_count_memory_and_selectors() -> None:
    words = DraBackend(consumable_capacity=True).describe_request(GpuSlice.parse("2x8Gi"))
    assert words == "request gpu: 2 × gpu.nvidia.com with 8Gi of memory each"
    words = DraBackend().describe_request(GpuSlice.parse("1 device.name=T4"))
    assert (
        words
        == 'request gpu: 1 × gpu.nvidia.com where device.attributes["gpu.nvidia.com"].productName == "T4"'
    )
