"""``bf-jupyter kernelspec install``: install or update a Bitfusion kernelspec."""

from __future__ import annotations

import argparse
import sys

HELP = "Install or update a Bitfusion GPU kernelspec (Kubernetes or local)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="kernelspec_action", metavar="ACTION", required=True)
    install = actions.add_parser(
        "install",
        help="install (or replace) a kernelspec",
        description="Install a kernelspec whose kernels run on a GPU slice: 'local' wraps a local "
        "kernel in 'bitfusion run', 'kubernetes' starts each kernel in its own pod.",
    )
    install.add_argument("--backend", choices=["kubernetes", "local"], default="local")
    where = install.add_mutually_exclusive_group()
    where.add_argument(
        "--user",
        action="store_true",
        help="install for this user, in the Jupyter data directory ($JUPYTER_DATA_DIR if set); "
        "the default",
    )
    where.add_argument(
        "--sys-prefix", action="store_true", help="install into this Python environment"
    )
    where.add_argument("--prefix", metavar="P", help="install into P/share/jupyter/kernels")
    install.add_argument("--name", metavar="N", help="kernel name (default: the backend's)")
    install.add_argument("--display-name", metavar="D", help="the name shown in the launcher")
    install.add_argument(
        "--slice", metavar="SLICE", help="default GPU slice, e.g. 1x50%%, 1, 2x8Gi"
    )
    install.add_argument("--image", metavar="IMG", help="kernel image (kubernetes backend)")
    install.add_argument("--namespace", metavar="NS", help="namespace of kernel pods (kubernetes)")
    install.add_argument(
        "--gpu-backend",
        metavar="NAME",
        help="kubernetes: the GPU backend its kernels always run on (bitfusion, hami, nvidia, "
        "nvidia-time-slicing, nvidia-mps…); default: the one chosen at launch",
    )


def run(args: argparse.Namespace) -> int:
    from bf_jupyter.kernels.kernelspecs import (
        KernelspecError,
        KernelspecRequest,
        install_kernelspec,
        render_kernel_json,
    )

    request = KernelspecRequest(
        backend=args.backend,
        name=args.name,
        display_name=args.display_name,
        slice_text=args.slice,
        image=args.image,
        namespace=args.namespace,
        gpu_backend=args.gpu_backend,
    )
    prefix = sys.prefix if args.sys_prefix else args.prefix
    try:
        target = install_kernelspec(request, user=prefix is None, prefix=prefix)
    except KernelspecError as error:
        print(f"bf-jupyter kernelspec install: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(
            f"bf-jupyter kernelspec install: cannot write the kernelspec: {error}", file=sys.stderr
        )
        return 1
    spec = render_kernel_json(request)
    config = spec["metadata"]["kernel_provisioner"]["config"]
    print(
        f"Installed kernelspec {request.kernel_name} ({spec['display_name']}, default slice "
        f"{config['default_slice']}) in {target}"
    )
    return 0
