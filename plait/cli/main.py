"""The ``plait`` command: one root group, subcommands loaded only when used.

Errors from the library (PlaitError) and from the operating system become one line
on stderr and exit status 1; Ctrl-C exits 130. Tracebacks are for bugs only.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from typing import Any

import click

from plait.errors import PlaitError

DEFAULT_DATA = "./plait-data"

# name -> "module:attribute"; imported on first use so `plait --help` stays fast and
# a missing optional dependency of one command cannot break the others.
LAZY_COMMANDS: dict[str, str] = {
    "topic": "plait.cli.topic_cmd:topic",
    "produce": "plait.cli.produce_cmd:produce",
    "consume": "plait.cli.consume_cmd:consume",
    "bench": "plait.cli.bench_cmd:bench",
    "serve": "plait.cli.serve_cmd:serve",
    "status": "plait.cli.status_cmd:status",
    "process": "plait.cli.process_cmd:process",
    "run": "plait.cli.run_cmd:run",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._available()))

    def _available(self) -> dict[str, str]:
        found = {}
        for name, target in LAZY_COMMANDS.items():
            module = target.split(":")[0]
            if importlib.util.find_spec(module) is not None:
                found[name] = target
        return found

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None:
            return cmd
        target = self._available().get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data",
    "data_dir",
    default=DEFAULT_DATA,
    show_default=True,
    envvar="PLAIT_DATA",
    type=click.Path(file_okay=False),
    help="Data dir of the embedded log (also PLAIT_DATA).",
)
@click.version_option(package_name="plait")
@click.pass_context
def cli(ctx: click.Context, data_dir: str) -> None:
    """plait: an ordered, durable, low-latency event stream."""
    ctx.ensure_object(dict)
    ctx.obj["data_dir"] = data_dir


def fail(message: str) -> None:
    click.echo(f"plait: error: {message}", err=True)


def main(argv: list[str] | None = None) -> Any:
    # Library warnings (a truncated torn tail, for example) reach the user as one line.
    logging.basicConfig(format="plait: warning: %(message)s", level=logging.WARNING)
    try:
        return cli.main(args=argv, prog_name="plait", standalone_mode=False)
    except click.exceptions.Abort:
        fail("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        fail("interrupted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except PlaitError as exc:
        fail(str(exc))
        sys.exit(1)
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            sys.exit(1)
        fail(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        sys.exit(1)


if __name__ == "__main__":
    main()
