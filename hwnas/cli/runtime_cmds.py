"""``hwnas runtimes``: which runtimes (and their providers) can measure and run models here."""

from __future__ import annotations

import click

from hwnas.cli.common import print_json


def runtime_rows() -> list[dict]:
    """One row per registered runtime: name, version (None: missing), usable providers, install line, files."""
    from hwnas.runtimes import DEFAULT_RUNTIME, RUNTIMES, get_runtime

    rows = []
    for name in RUNTIMES.names():
        runtime = get_runtime(name)
        version = runtime.version()
        usable = runtime.available_providers()
        rows.append({"runtime": name, "default": name == DEFAULT_RUNTIME, "installed": version is not None,
                     "version": version, "providers": usable,
                     "missing_providers": [{"provider": p, "install": runtime.provider_install_line(p)}
                                           for p in runtime.providers if p not in usable],
                     "converter_missing": runtime.converter_missing() if version is not None else None,
                     "ships": list(runtime.ship_suffixes), "install": runtime.install_line()})
    return rows


@click.command("runtimes")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def runtimes_cmd(as_json: bool) -> None:
    """List the runtimes and providers usable here, their versions, and how to install the missing.

    \b
    hwnas runtimes
    hwnas runtimes --json
    """
    rows = runtime_rows()
    if as_json:
        print_json({"runtimes": rows})
        return
    width = max(len(r["runtime"]) for r in rows)
    for row in rows:
        name = row["runtime"].ljust(width)
        if not row["installed"]:
            click.echo(f"{name}  not installed: {row['install']}")
            continue
        default = " (default)" if row["default"] else ""
        click.echo(f"{name}  {row['version']}{default}: providers {', '.join(row['providers']) or 'none'}; ships "
                   f"{' + '.join(row['ships'])}")
        if row["converter_missing"]:
            click.echo(f"{' ' * width}    runs copied files only: {row['converter_missing']}")
        for missing in row["missing_providers"]:
            click.echo(f"{' ' * width}    provider {missing['provider']} not here: {missing['install']}")
