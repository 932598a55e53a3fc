"""Raw-address loads, stores and copies for the numba JSON kernels, as numba intrinsics.

Why: the kernels read ``bytes`` records in place and write columns through addresses
(ints), because numba reference-counts every array handed to a function (atomic updates
that cost more than parsing a field) and wraps every negative array index (a branch per
byte read). None of these checks bounds: callers keep every address inside memory they
own or keep alive. Addresses are computed as integers before ``inttoptr`` so LLVM sees no
pointer arithmetic on a null base.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_I64 = ir.IntType(64)
Codegen = Callable[[Any, ir.IRBuilder, Any, list[ir.Value]], ir.Value]


def _address(
    builder: ir.IRBuilder, base: ir.Value, index: ir.Value, width: int
) -> ir.Value:
    offset = builder.mul(index, ir.Constant(_I64, width // 8)) if width > 8 else index
    return builder.inttoptr(builder.add(base, offset), ir.IntType(width).as_pointer())


def _at(typingctx: Any, ptr: Any, pos: Any) -> tuple[Any, Codegen]:
    def codegen(
        context: Any, builder: ir.IRBuilder, sig: Any, args: list[ir.Value]
    ) -> ir.Value:
        return builder.zext(builder.load(_address(builder, args[0], args[1], 8)), _I64)

    return types.int64(types.int64, types.int64), codegen


def _load_u64(typingctx: Any, ptr: Any, pos: Any) -> tuple[Any, Codegen]:
    def codegen(
        context: Any, builder: ir.IRBuilder, sig: Any, args: list[ir.Value]
    ) -> ir.Value:
        addr = builder.inttoptr(builder.add(args[0], args[1]), _I64.as_pointer())
        return builder.load(addr, align=1)

    return types.uint64(types.int64, types.int64), codegen


def _load_i64(typingctx: Any, ptr: Any, index: Any) -> tuple[Any, Codegen]:
    def codegen(
        context: Any, builder: ir.IRBuilder, sig: Any, args: list[ir.Value]
    ) -> ir.Value:
        return builder.load(_address(builder, args[0], args[1], 64), align=1)

    return types.int64(types.int64, types.int64), codegen


def _store(width: int) -> Callable[[Any, Any, Any, Any], tuple[Any, Codegen]]:
    def typer(typingctx: Any, ptr: Any, index: Any, value: Any) -> tuple[Any, Codegen]:
        def codegen(
            context: Any, builder: ir.IRBuilder, sig: Any, args: list[ir.Value]
        ) -> ir.Value:
            val = args[2]
            if isinstance(sig.args[2], types.Float):
                val = builder.bitcast(val, _I64)  # a float64 is stored bit for bit
            if width < 64:
                val = builder.trunc(val, ir.IntType(width))
            builder.store(val, _address(builder, args[0], args[1], width))
            return context.get_dummy_value()

        return types.none(types.int64, types.int64, value), codegen

    return typer


def _copy_bytes(typingctx: Any, dst: Any, src: Any, size: Any) -> tuple[Any, Codegen]:
    def codegen(
        context: Any, builder: ir.IRBuilder, sig: Any, args: list[ir.Value]
    ) -> ir.Value:
        i8p = ir.IntType(8).as_pointer()
        d = builder.inttoptr(args[0], i8p)
        s = builder.inttoptr(args[1], i8p)
        cgutils.raw_memcpy(builder, d, s, args[2], 1)
        return context.get_dummy_value()

    return types.none(types.int64, types.int64, types.int64), codegen


def _trailing_zeros(typingctx: Any, word: Any) -> tuple[Any, Codegen]:
    def codegen(
        context: Any, builder: ir.IRBuilder, sig: Any, args: list[ir.Value]
    ) -> ir.Value:
        fnty = ir.FunctionType(_I64, [_I64, ir.IntType(1)])
        cttz = cgutils.get_or_insert_function(builder.module, fnty, "llvm.cttz.i64")
        return builder.call(cttz, [args[0], ir.Constant(ir.IntType(1), 0)])

    return types.int64(types.uint64), codegen


#: the byte at address ``ptr + pos``, as an int64
at = cast(Callable[[int, int], int], intrinsic(_at))
#: the 8 bytes at ``ptr + pos`` as a little-endian uint64 (unaligned)
load_u64 = cast(Callable[[int, int], int], intrinsic(_load_u64))
#: the int64 at ``ptr + 8 * index`` (unaligned)
load_i64 = cast(Callable[[int, int], int], intrinsic(_load_i64))
#: ``store_uN(ptr, index, value)`` writes the low N bits of ``value`` at ``ptr + index * N/8``
store_u8 = cast(Callable[[int, int, int], None], intrinsic(_store(8)))
store_i32 = cast(Callable[[int, int, int], None], intrinsic(_store(32)))
store_i64 = cast(Callable[[int, int, "int | float"], None], intrinsic(_store(64)))
#: memcpy ``size`` bytes from address ``src`` to address ``dst`` (no overlap)
copy_bytes = cast(Callable[[int, int, int], None], intrinsic(_copy_bytes))
#: index of the lowest set bit of a non-zero uint64, as an int64 (LLVM cttz)
trailing_zeros_u64 = cast(Callable[[Any], int], intrinsic(_trailing_zeros))
