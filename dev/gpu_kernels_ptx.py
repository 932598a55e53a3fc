"""Compile every GPU kernel of plait to sm_90 (Hopper) machine code without a GPU, with
the argument types the engine passes at run time, and report registers and spills.

Why: numba's CUDA simulator (tests/gpu_sim) runs kernels as Python, so it accepts code
that the real compiler would reject (a type numba.cuda cannot infer, an unsupported
call). This compiles the same source through NVVM to PTX and assembles it with ptxas.

Needs a CUDA toolkit (ptxas and libdevice; CUDA_HOME or ptxas on PATH), no driver. Run:
    python dev/gpu_kernels_ptx.py        (exit 1 if any kernel fails)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path

os.environ["NUMBA_ENABLE_CUDASIM"] = "0"  # before numba is imported: the real compiler


def toolkit() -> Path | None:
    """The CUDA toolkit's root (holding bin/ptxas and nvvm/libdevice), or None."""
    candidates = []
    if os.environ.get("CUDA_HOME"):
        candidates.append(Path(os.environ["CUDA_HOME"]))
    found = shutil.which("ptxas")
    if found:
        candidates.append(Path(found).resolve().parent.parent)
    candidates += sorted(Path("/usr/local").glob("cuda*"), reverse=True)
    for root in candidates:
        if (root / "bin" / "ptxas").exists() and list((root / "nvvm" / "libdevice").glob("libdevice*.bc")):
            return root
    return None


def main() -> int:
    root = toolkit()
    if root is None:
        print("no CUDA toolkit (ptxas + nvvm/libdevice) found")
        return 2
    from numba import cuda
    from numba import types as t
    from numba.cuda import dispatcher
    from numba.cuda.cudadrv import nvrtc, nvvm

    # Without a driver numba cannot ask the device or NVRTC what to target: say sm_90,
    # and point it at the toolkit's libdevice. These are numba-cuda internals (0.30);
    # where they moved, say so rather than fail on a GPU-free machine.
    hooks = [(nvrtc, "get_supported_ccs"), (nvvm, "get_libdevice"), (nvvm, "open_libdevice"),
             (dispatcher, "get_current_device")]
    missing = [f"{m.__name__}.{name}" for m, name in hooks if not hasattr(m, name)]
    if missing:
        print(f"this numba-cuda has no {', '.join(missing)}: cannot compile without a GPU")
        return 2
    libdevice = next((root / "nvvm" / "libdevice").glob("libdevice*.bc"))
    nvrtc.get_supported_ccs = lambda: ((7, 5), (8, 0), (8, 6), (9, 0))
    nvvm.get_libdevice = lambda: str(libdevice)
    nvvm.open_libdevice = lambda: libdevice.read_bytes()
    dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=(9, 0))

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from plait.process.gpu import aes_gcm, json_decode, match_kernel, take

    u8, i32, i64, f64, u32, b1 = t.uint8, t.int32, t.int64, t.float64, t.uint32, t.boolean

    def a1(ty: t.Type) -> t.Array:
        return t.Array(ty, 1, "C")

    def a2(ty: t.Type) -> t.Array:
        return t.Array(ty, 2, "C")

    jobs = [
        ("json scan", json_decode.scan_kernel,
         (a1(u8), a1(i64), a1(u8), a1(u8), a1(i64), a1(i64), a1(i64), a2(i64), a2(f64),
          a2(u8), a2(u8), a2(i32), a2(i32), a1(u8), i64, i64)),
        ("json string fill", json_decode.string_fill_kernel,
         (a1(u8), a1(i64), a2(i32), a2(i32), a2(u8), a1(u8), a1(i64), a2(i64), a1(u8))),
        ("match (uint8 validity)", match_kernel.match_literals,
         (a1(u8), a1(i64), a1(u8), a1(u8), a1(i64), i64, i64, a2(u32))),
        ("match (bool validity)", match_kernel.match_literals,
         (a1(u8), a1(i64), a1(b1), a1(u8), a1(i64), i64, i64, a2(u32))),
        ("string gather", take._gather_bytes, (a1(u8), a1(i64), a1(i64), a1(i64), a1(u8))),
        ("aes-gcm decrypt", aes_gcm.gcm_decrypt,
         (a1(u8), a1(i64), a1(i32), a2(u32), a1(i32), a2(u32), a1(u8), a1(i64), a1(u8),
          a1(i64), a1(u8))),
    ]  # fmt: skip
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, kernel, sig in jobs:
            try:
                ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(9, 0))
            except Exception as exc:  # noqa: BLE001 - report every kernel, then fail
                print(f"FAILED {name}: {type(exc).__name__}: {str(exc)[:2000]}")
                failed += 1
                continue
            path = Path(tmp) / "k.ptx"
            path.write_text(ptx)
            out = subprocess.run(
                [str(root / "bin" / "ptxas"), "-arch=sm_90", "-v", str(path), "-o", os.devnull],
                capture_output=True, text=True, check=False,
            )
            info = [ln.split(":", 1)[-1].strip() for ln in out.stderr.splitlines()
                    if "registers" in ln or "spill" in ln]
            status = "ok" if out.returncode == 0 else "FAILED (ptxas)"
            failed += out.returncode != 0
            print(f"{status} {name}: {'; '.join(info)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
