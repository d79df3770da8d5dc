"""Registries that refuse a second entry for the same key (precision rules, hls4ml handlers).

A decorator such as ``@rule(HDense)`` fills a module-level dict when its module is imported.
A second ``@rule(HDense)`` used to replace the first silently, so which one won depended on
import order. :func:`register_once` refuses it with :class:`DuplicateRegistrationError`: a
programming error in hgq_chip (or an extension), never something a user's model or file can
cause, so it is not an :class:`hgq_chip.errors.HGQChipError` and has no exit code.
Standard library only; it sits at the bottom of the package with ``errors``.
"""

from __future__ import annotations


class DuplicateRegistrationError(RuntimeError):
    """A key (usually a layer class) is registered twice in the same registry."""


def describe(value) -> str:
    """``module.qualname`` of a registered function or class (for error messages)."""
    return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', repr(value))}"


def register_once(table: dict, keys, value, registry: str) -> None:
    """``table[key] = value`` for every key of ``keys``, or :class:`DuplicateRegistrationError`.

    Refused, with ``table`` left unchanged, when a key is already in ``table`` or appears twice
    in ``keys``. ``registry`` names the registry in the message (e.g. ``"the precision rule (@rule)"``).
    """
    keys = tuple(keys)
    for index, key in enumerate(keys):
        name = getattr(key, "__qualname__", repr(key))
        if key in table:
            raise DuplicateRegistrationError(
                f"{name} is already registered as {registry} {describe(table[key])}; refusing a second one, "
                f"{describe(value)} (it would silently replace the first, depending on import order). Remove one "
                "of them; a subclass that needs its own entry must be a class of its own"
            )
        if key in keys[:index]:
            raise DuplicateRegistrationError(f"{name} is listed twice in one registration of {describe(value)} "
                                             f"as {registry}")
    for key in keys:
        table[key] = value
