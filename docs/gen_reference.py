"""The generated parts of the user guide: the configuration reference (from the config
dataclasses in ``sne_loihi/config_sections.py``) and the CLI reference (from the Typer app).

``mkdocs build`` runs this file as a hook (``mkdocs.yml``: ``hooks``): a page holding a marker
line ``<!-- generated: NAME -->`` gets the generated Markdown in its place, so the published
reference is always the code's. Run it by hand to see a part::

    python docs/gen_reference.py config     # or: cli
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import re
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

MARKER = "<!-- generated: {} -->"


# ---- text helpers --------------------------------------------------------------------------
def _rst_to_md(text: str) -> str:
    """Docstring markup to Markdown: ``x`` -> `x`; :role:`~a.b.C` -> `C`; :role:`a.b` -> `a.b`."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", lambda m: "`" + (m.group(1).rsplit(".", 1)[-1]
                                                            if m.group(0).split("`")[1].startswith("~")
                                                            else m.group(1)) + "`", text)
    return re.sub(r"``([^`]+)``", r"`\1`", text)


def _cell(text: str) -> str:
    """One table cell: one line, ``|`` and raw ``<``/``>`` escaped outside code spans."""
    text = " ".join(_rst_to_md(text).split())
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # even parts lie outside code spans
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts).replace("|", "\\|")


def _paragraphs(text: str) -> str:
    """A docstring as Markdown paragraphs (lines of a paragraph joined)."""
    paras = [" ".join(p.split()) for p in re.split(r"\n\s*\n", inspect.cleandoc(text or "")) if p.strip()]
    return "\n\n".join(_cell(p).replace("\\|", "|") for p in paras)


# ---- configuration -------------------------------------------------------------------------
def attribute_docs(cls: type) -> dict[str, str]:
    """A dataclass's Google-style ``Attributes:`` section: field name -> meaning (an entry
    ``a, b: text`` documents both)."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    match = re.search(r"^Attributes:\n((?:[ \t]+.*\n?|\n)*)", doc, flags=re.MULTILINE)
    if not match:
        return {}
    out: dict[str, str] = {}
    names: list[str] = []
    for line in match.group(1).splitlines():
        entry = re.match(r"^ {4}([A-Za-z_][\w, ]*):\s*(.*)$", line)
        if entry and not line.startswith(" " * 5):
            names = [n.strip() for n in entry.group(1).split(",")]
            for name in names:
                out[name] = entry.group(2)
        elif line.strip() and names:
            for name in names:
                out[name] += " " + line.strip()
    return out


def _type_text(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if origin is not None and type(None) in typing.get_args(tp):
        return _type_text(args[0]) + " or unset"
    if origin is list:
        return f"list of {_type_text(args[0])}"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(f"`{m.value}`" for m in tp)
    return {bool: "bool", int: "integer", float: "number", str: "string"}.get(tp, getattr(tp, "__name__", str(tp)))


def _toml(value: Any) -> str:
    """A default as TOML writes it (``None``: unset)."""
    if value is None:
        return "unset"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, list):
        return "`[" + ", ".join(_toml(v).strip("`") for v in value) + "]`"
    return f"`{value!r}`"


def config_keys() -> list[tuple[str, str, Any, str]]:
    """Every config key as ``(dotted key, type, default, meaning)``, in the file's order.

    Raises:
        ValueError: A key without a meaning in its dataclass's docstring.
    """
    from sne_loihi.config import RunConfig, field_types

    rows: list[tuple[str, str, Any, str]] = []

    def walk(cls: type, instance: Any, prefix: str) -> None:
        docs, hints = attribute_docs(cls), field_types(cls)
        for f in dataclasses.fields(cls):
            value = getattr(instance, f.name)
            if dataclasses.is_dataclass(hints[f.name]):
                if prefix:  # a nested table, e.g. student.neuron
                    walk(hints[f.name], value, f"{prefix}{f.name}.")
                continue
            if f.name not in docs:
                raise ValueError(f"config key {prefix}{f.name} has no meaning in {cls.__name__}'s Attributes docstring")
            rows.append((prefix + f.name, _type_text(hints[f.name]), value, docs[f.name]))

    root = RunConfig()
    walk(RunConfig, root, "")
    for f in dataclasses.fields(RunConfig):
        section = getattr(root, f.name)
        if dataclasses.is_dataclass(section):
            walk(type(section), section, f"{f.name}.")
    return rows


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def config_reference() -> str:
    """The configuration reference: every key by section, the data-set presets' changes, the
    named presets' values and the choices of every enumerated key."""
    from sne_loihi.config import RunConfig, load_toml, preset, preset_names, PRESET_DIR

    rows = config_keys()
    out: list[str] = []
    sections: dict[str, list[tuple[str, str, Any, str]]] = {}
    for key, tp, default, meaning in rows:
        sections.setdefault(key.rsplit(".", 1)[0] if "." in key else "", []).append((key, tp, default, meaning))
    for section, items in sections.items():
        title = f"`[{section}]`" if section else "Top level"
        out += [f"## {title}", "", "| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        out += [f"| `{key}` | {_cell(tp)} | {_toml(default)} | {_cell(meaning)} |" for key, tp, default, meaning in items]
        out.append("")
    base = _flatten(RunConfig().to_dict())
    out += ["## Data-set presets", "",
            "The base of every config is the preset of its data set (`--dataset`, or `data.name` of "
            "a `--config` file or named preset). `digits` is the defaults above; the others change:", "",
            "| data set | keys that differ from the defaults |", "| --- | --- |"]
    for name in ("cifar10", "imagefolder", "npz"):
        changed = {k: v for k, v in _flatten(preset(name).to_dict()).items() if base.get(k) != v}
        out.append(f"| `{name}` | " + ", ".join(f"`{k}` = {_toml(v).strip('`')}" for k, v in sorted(changed.items())) + " |")
    out += ["", "## Named presets (`--preset NAME`)", "",
            "Files in `sne_loihi/presets/`; each sets the keys below on top of its data set's preset.", ""]
    for name in preset_names():
        values = _flatten(load_toml(PRESET_DIR / f"{name}.toml"))
        out += [f"### `{name}`", "", ", ".join(f"`{k}` = {_toml(v).strip('`')}" for k, v in values.items()), ""]
    enums: dict[str, type] = {}
    from sne_loihi.config import field_types

    def collect(cls: type) -> None:
        for tp in field_types(cls).values():
            for t in (tp, *typing.get_args(tp)):
                if isinstance(t, type) and issubclass(t, enum.Enum):
                    enums[t.__name__] = t
                elif dataclasses.is_dataclass(t):
                    collect(t)

    collect(RunConfig)
    out += ["## Choices", ""]
    for name in sorted(enums):
        out += [f"### `{name}`", "", _paragraphs(enums[name].__doc__ or ""), ""]
    return "\n".join(out).rstrip() + "\n"


# ---- command line --------------------------------------------------------------------------
def cli_commands() -> list[tuple[str, Any, Any]]:
    """Every ``sne`` command as ``(full name, command, context)``, groups first."""
    import typer
    import typer.main

    from sne_loihi.cli import app

    root = typer.main.get_command(app)
    found: list[tuple[str, Any, Any]] = []

    def walk(cmd: Any, ctx: Any, name: str) -> None:
        found.append((name, cmd, ctx))
        if hasattr(cmd, "list_commands"):
            for sub in cmd.list_commands(ctx):
                child = cmd.get_command(ctx, sub)
                if child is not None and not getattr(child, "hidden", False):
                    walk(child, typer.Context(child, info_name=sub, parent=ctx), f"{name} {sub}")

    walk(root, typer.Context(root, info_name="sne"), "sne")
    return found


def cli_reference() -> str:
    """The CLI reference: per command its help, usage, arguments and options (as ``--help``
    shows them)."""
    out: list[str] = []
    for name, cmd, ctx in cli_commands():
        out += [f"## `{name}`", "", _paragraphs(cmd.help or ""), ""]
        usage = cmd.get_usage(ctx).replace("Usage: ", "", 1).strip()
        out += ["```text", usage, "```", ""]
        records = []
        for param in cmd.get_params(ctx):
            if getattr(param, "hidden", False) or param.name == "help":
                continue
            record = param.get_help_record(ctx)
            if record is not None:
                records.append((getattr(param, "rich_help_panel", None) or "", record))
        if records:
            out += ["| argument / option | meaning |", "| --- | --- |"]
            out += [f"| `{' '.join(rec[0].split())}` | {_cell(rec[1]) or ' '} |" for _, rec in records]
            out.append("")
        if hasattr(cmd, "list_commands") and cmd.list_commands(ctx):
            out += ["Sub-commands: " + ", ".join(f"`{name} {s}`" for s in cmd.list_commands(ctx)) + ".", ""]
    out += renamed_options()
    return "\n".join(out).rstrip() + "\n"


def renamed_options() -> list[str]:
    """The table of old option names that still work (``sne_loihi.cli.deprecations``)."""
    from sne_loihi.cli.deprecations import DEPRECATED_OPTIONS

    if not DEPRECATED_OPTIONS:
        return []
    out = ["## Renamed options", "",
           "These old names still work for a while: the command rewrites them and prints a `warning:` "
           "line with the new name.", "", "| command | old option | new option |", "| --- | --- | --- |"]
    out += [f"| `sne {r.command}` | `{r.old}` | `{r.new}` |" for r in DEPRECATED_OPTIONS]
    return out + [""]


GENERATORS: dict[str, Callable[[], str]] = {"config reference": config_reference, "cli reference": cli_reference}

#: The installed layout of the package (pyproject's ``package-dir``): the stage packages live
#: in folders of their own at the repository root.
STAGE_FOLDERS = {"train": "train", "export": "export", "sim": "sim"}
#: Where :func:`api_tree` puts the links, beside ``mkdocs.yml`` (``paths`` of the Python handler).
API_TREE = ".api-tree"


def api_tree(repo: Path) -> Path:
    """``REPO/.api-tree/sne_loihi`` as the package is installed, made of links: the core's
    files plus ``train/``, ``export/`` and ``sim/`` inside it, so the API reference's static
    analysis (griffe, through mkdocstrings) finds ``sne_loihi.export`` and ``sne_loihi.sim``
    without importing anything. Refreshed in place (links only; safe to delete)."""
    package = repo / API_TREE / "sne_loihi"
    package.mkdir(parents=True, exist_ok=True)
    wanted = {e.name: e for e in (repo / "sne_loihi").iterdir() if e.name != "__pycache__"}
    wanted.update({name: repo / folder for name, folder in STAGE_FOLDERS.items()})
    for link in package.iterdir():
        if link.name not in wanted or not link.is_symlink() or link.resolve() != wanted[link.name].resolve():
            link.unlink()
    for name, target in wanted.items():
        if not (package / name).is_symlink():
            try:
                (package / name).symlink_to(target)
            except FileExistsError:  # another build made it at the same moment
                pass
    return package.parent


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """mkdocs hook: put each generated part where its marker line stands."""
    for name, generate in GENERATORS.items():
        marker = MARKER.format(name)
        if marker in markdown:
            markdown = markdown.replace(marker, generate())
    return markdown


def on_page_content(html: str, **kwargs: Any) -> str:
    """mkdocs hook: the docstrings' Sphinx roles (``:class:`~a.b.C```, rendered as
    ``:class:<code>~a.b.C</code>``) as plain code (``C``; without ``~`` the full path)."""
    return re.sub(r":(?:class|func|meth|mod|data|attr|exc):<code>(~?)([^<]+)</code>",
                  lambda m: f"<code>{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}</code>", html)


def on_startup(**kwargs: Any) -> None:
    """mkdocs hook, before the plugins read their config: make :func:`api_tree`."""
    api_tree(Path(__file__).resolve().parents[1])


if __name__ == "__main__":
    which = {"config": "config reference", "cli": "cli reference"}
    if len(sys.argv) != 2 or sys.argv[1] not in which:
        sys.exit("usage: python docs/gen_reference.py config|cli")
    sys.stdout.write(GENERATORS[which[sys.argv[1]]]())
