"""`mm list` and `mm config`: what can be built, and the config a command would resolve."""

from __future__ import annotations

from typing import Annotated

import typer

from mmcli.commands.common import ConfigOpt, PresetOpt, SetOpt, handle_errors, resolve_config


def list_components() -> None:
    """List the presets, the input kinds, each kind's encoders and the fusions."""
    import mmcli.models  # noqa: F401  (fills the registries)
    from mmcli import modalities
    from mmcli.models.registry import ENCODERS, FUSIONS
    from mmcli.presets import PRESETS

    typer.echo("presets (--preset):")
    for name, (_, doc) in PRESETS.items():
        typer.echo(f"  {name:<16} {doc}")
    typer.echo(f"input kinds (data.inputs, inferred in this order): {', '.join(modalities.KIND_ORDER)}")
    for reg in [*(ENCODERS[k] for k in modalities.KIND_ORDER if k in ENCODERS), FUSIONS]:
        typer.echo(f"{reg.kind}s:")
        for name in reg.names():
            typer.echo(f"  {name:<16} {reg.doc(name)}")


@handle_errors
def show_config(
    config: ConfigOpt = None,
    set_: SetOpt = None,
    keys: Annotated[bool, typer.Option("--keys", help="List every key with its default and help.")] = False,
    preset: PresetOpt = None,
) -> None:
    """Print the resolved config as YAML (defaults <- --preset <- --config <- --set)."""
    from mmcli.config import describe_keys, dump_config

    if keys:
        for key, default, help_text in describe_keys():
            typer.echo(f"{key:<26} {default:<14} {help_text}")
        return
    typer.echo(dump_config(resolve_config(config, set_, None, preset)), nl=False)
