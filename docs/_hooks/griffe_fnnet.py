"""Griffe extensions for fnnet's API reference (loaded by mkdocstrings, see mkdocs.yml).

``RecordSignatures``: attrs classes and NamedTuples have no ``__init__`` in their source, so static analysis
would show ``Linear()``; this extension gives them the constructor signature Python actually has.

``ReSTDocstrings``: fnnet's docstrings follow the Google style, with two reST habits Markdown does not know:

- roles such as ``:func:`grad``` or ``:class:`~fnnet.optim.GradientTransformation```, which become links
  to the named object when the API reference renders it (and plain code when it does not);
- a paragraph ending in ``::`` followed by an indented literal block, which becomes a Python code block;

and two habits the Google parser reads otherwise: several arguments sharing one description
(``b1, b2: decay rates``), which becomes one item per argument; and a Returns section written as prose,
whose first colon must not split off a type.
"""

from __future__ import annotations

import html
import importlib
import inspect
import re

import griffe

def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


_ROLE = re.compile(r":(?:py:)?(?:func|meth|class|mod|attr|data|obj|exc):`~?\.?([^`]+)`")


def _identifier(obj: griffe.Object, name: str) -> str:
    """The full path ``name`` means inside ``obj``'s scope (``name`` itself when it does not resolve)."""
    head, _, rest = name.partition(".")
    try:
        base = obj.resolve(head)
    except (griffe.NameResolutionError, KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return name
    return f"{base}.{rest}" if rest else base


def _link_roles(obj: griffe.Object, text: str) -> str:
    def link(match: re.Match) -> str:
        name = match.group(1)
        shown = html.escape(name.rsplit(".", 1)[-1] if match.group(0).count("~") else name)
        return f'<autoref identifier="{html.escape(_identifier(obj, name))}" optional><code>{shown}</code></autoref>'

    return _ROLE.sub(link, text)


_ARGS_SECTION = re.compile(r"^(\s*)(Args|Arguments|Params|Parameters|Keyword Args|Keyword Arguments):\s*$")
_GROUPED_ITEM = re.compile(r"^(\s*)(\w+(?:\s*,\s*\w+)+)((?:\s*\([^)]*\))?:.*)$")


def _split_grouped_args(text: str) -> str:
    """``b1, b2: decay rates`` in an Args section -> one item per name, each with the shared description."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        section = _ARGS_SECTION.match(line)
        if not section:
            continue
        item_indent = None
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > len(section.group(1))):
            item = lines[i]
            i += 1
            if item.strip() and item_indent is None:
                item_indent = _indent(item)
            grouped = _GROUPED_ITEM.match(item)
            if not grouped or _indent(item) != item_indent:
                out.append(item)
                continue
            continuation = []
            while i < len(lines) and lines[i].strip() and _indent(lines[i]) > item_indent:
                continuation.append(lines[i])
                i += 1
            for name in re.split(r"\s*,\s*", grouped.group(2)):
                out += [f"{grouped.group(1)}{name}{grouped.group(3)}", *continuation]
    return "\n".join(out)


_RETURNS_SECTION = re.compile(r"^\s*(Returns|Yields):\s*$")


def _prose_returns(text: str) -> str:
    """Mark the first line of a Returns section as description only.

    The parser reads ``text before the first colon`` of that line as the returned type, which fnnet's prose
    returns (``(params, state)``: new trees ...) do not hold; a leading ``:`` leaves the type empty, so the
    function's return annotation is shown instead.
    """
    lines = text.split("\n")
    for i, line in enumerate(lines[:-1]):
        if _RETURNS_SECTION.match(line) and lines[i + 1].strip():
            body = lines[i + 1]
            lines[i + 1] = " " * _indent(body) + ": " + body.lstrip()
    return "\n".join(lines)


def _fence_literal_blocks(text: str) -> str:
    """``intro::`` + blank line + indented block  ->  ``intro:`` + blank line + a fenced Python block."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        if not line.rstrip().endswith("::") or i >= len(lines) or lines[i].strip():
            continue
        base = _indent(line)
        end = i
        while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > base):
            end += 1
        block = lines[i:end]
        while block and not block[0].strip():
            block.pop(0)
        while block and not block[-1].strip():
            block.pop()
        if not block:
            continue
        inner = min(_indent(b) for b in block if b.strip())
        stripped = line.rstrip()[:-2].rstrip()
        out[-1] = (stripped + ":") if stripped.strip() else ""
        pad = " " * base
        out += ["", pad + "```python", *[pad + b[inner:] for b in block], pad + "```", ""]
        i = end
    return "\n".join(out)


class ReSTDocstrings(griffe.Extension):
    """Rewrite every docstring of a loaded package once it is complete (so names resolve)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        self._rewrite(pkg, seen=set())

    def _rewrite(self, obj: griffe.Object, seen: set) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            text = _prose_returns(_split_grouped_args(_fence_literal_blocks(obj.docstring.value)))
            obj.docstring.value = _link_roles(obj, text)
        for member in obj.members.values():
            if not member.is_alias:
                self._rewrite(member, seen)


_KINDS = {kind.value: kind for kind in griffe.ParameterKind}
_FIELD_CALLS = ("attrs.field", "attr.ib", "attr.attrib", "attrs.attrib", "dataclasses.field")


def _runtime_class(cls: griffe.Class):
    try:
        return getattr(importlib.import_module(cls.module.path), cls.name)
    except (ImportError, AttributeError):
        return None


def _is_record(runtime) -> bool:
    return isinstance(runtime, type) and (hasattr(runtime, "__attrs_attrs__") or hasattr(runtime, "_fields"))


def _static_default(cls: griffe.Class, name: str):
    """The source expression of field ``name``'s default, as written in ``cls`` or a base (None if unknown).

    ``initializers.glorot_uniform`` reads better than the repr of the object it names.
    """
    for owner in (cls, *cls.mro()):
        member = owner.members.get(name)
        if member is None or member.is_alias or not member.is_attribute or member.value is None:
            continue
        value = member.value
        if isinstance(value, griffe.ExprCall) and str(value.function) in _FIELD_CALLS:
            arguments = {getattr(a, "name", None): getattr(a, "value", None) for a in value.arguments}
            if "factory" in arguments:
                return f"{arguments['factory']}()"
            return arguments.get("default")
        return value
    return None


def _annotation(cls: griffe.Class, name: str, runtime_param: inspect.Parameter):
    for owner in (cls, *cls.mro()):
        member = owner.members.get(name)
        if member is not None and not member.is_alias and member.is_attribute and member.annotation is not None:
            return member.annotation
    annotation = runtime_param.annotation
    if annotation is inspect.Parameter.empty:
        return None
    return getattr(annotation, "__forward_arg__", annotation if isinstance(annotation, str) else None)


def _constructor(cls: griffe.Class, runtime) -> griffe.Function:
    parameters = [griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword)]
    for param in inspect.signature(runtime).parameters.values():
        default = None
        if param.default is not inspect.Parameter.empty:
            default = _static_default(cls, param.name)
            if default is None or isinstance(default, griffe.ExprCall):  # a helper call: show its value
                default = repr(param.default)
        parameters.append(griffe.Parameter(param.name, annotation=_annotation(cls, param.name, param),
                                           kind=_KINDS[param.kind.description], default=default))
    return griffe.Function("__init__", lineno=0, endlineno=0, parent=cls,
                           parameters=griffe.Parameters(*parameters), returns="None")


class RecordSignatures(griffe.Extension):
    """Give attrs classes and NamedTuples without a written ``__init__`` their real constructor signature."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        for cls in _classes(pkg, seen=set()):
            if "__init__" not in cls.members and _is_record(runtime := _runtime_class(cls)):
                cls.set_member("__init__", _constructor(cls, runtime))


def _classes(obj: griffe.Object, seen: set):
    if obj.path in seen:
        return
    seen.add(obj.path)
    if obj.is_class:
        yield obj
    for member in obj.members.values():
        if not member.is_alias and (member.is_module or member.is_class):
            yield from _classes(member, seen)
