"""The ``hyperion`` command: the click group, its global options, and error reporting.

Commands live by topic (``local_cluster``: up/down; ``jobs``: submit/queue/status/logs/cancel;
``cluster``: apply/nodes/queues). Every failure a user can cause is reported here, once, as
``error: <message>`` on stderr with an exit code and no traceback:

- 2: bad input (usage errors, schema errors in a YAML file, 400/422 from the server);
- 1: anything else (not found, forbidden, control plane not running, unexpected errors);
- 124 / 130: ``submit --wait`` timed out / Ctrl-C.

Set ``HYPERION_DEBUG=1`` to get the traceback of an unexpected error.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

import click
import httpx

from hyperion import __version__
from hyperion.api.client import ApiError
from hyperion.cli import cluster, cost, jobs, local_cluster, nodepools, simulate
from hyperion.cli.context import CliError, CliState

VALIDATION_STATUSES = frozenset({400, 422})


def format_api_error(err: ApiError) -> str:
    """``error: <message>`` plus one ``  <loc.path>: <msg>`` line per detail entry."""
    lines = [f"error: {err.message}"]
    for item in err.detail:
        loc = ".".join(str(part) for part in item.get("loc") or [])
        line = f" (line {item['line']})" if item.get("line") is not None else ""
        msg = item.get("msg") or item.get("message") or ""
        lines.append(f"  {loc or '-'}{line}: {msg}")
    return "\n".join(lines)


def api_error_exit_code(err: ApiError) -> int:
    return 2 if err.status in VALIDATION_STATUSES else 1


def _fail(message: str, exit_code: int) -> NoReturn:
    click.echo(message, err=True)
    raise click.exceptions.Exit(exit_code)


class HyperionGroup(click.Group):
    """A group that turns known failures into one message and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:
            raise  # click handles a closed stdout (`hyperion logs JOB | head`)
        except CliError as err:
            _fail(err.message if err.plain else f"error: {err.message}", err.exit_code)
        except ApiError as err:
            message = format_api_error(err)
            state = ctx.obj if isinstance(ctx.obj, CliState) else None
            if err.status == 401 and state is not None:
                message += f"\nhint: {state.token_hint()}"
            _fail(message, api_error_exit_code(err))
        except httpx.ConnectError:
            address = ctx.obj.server_or_none if isinstance(ctx.obj, CliState) else None
            _fail(f"error: the control plane is not running at {address or 'the configured address'} "
                  "(connection refused); start it with `hyperion up`", 1)
        except httpx.TimeoutException as err:
            _fail(f"error: the control plane did not answer in time ({type(err).__name__}); "
                  "it may be overloaded, try again", 1)
        except httpx.HTTPError as err:
            _fail(f"error: talking to the control plane failed: {err}", 1)
        except httpx.InvalidURL as err:
            _fail(f"error: the server address is not a valid URL ({err}); check --server, "
                  "$HYPERION_SERVER or controlplane.json", 2)
        except KeyboardInterrupt:
            _fail("", 130)
        except Exception as err:  # noqa: BLE001 - the one top-level catch-all, by design
            if os.environ.get("HYPERION_DEBUG") == "1":
                traceback.print_exc()
                hint = ""
            else:
                hint = " (set HYPERION_DEBUG=1 for the traceback)"
            _fail(f"error: unexpected {type(err).__name__}: {err}{hint}", 1)


@click.group(cls=HyperionGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="Start with `hyperion up`, then `hyperion submit examples/jobs/hello.yaml`.")
@click.option("--data-dir", metavar="DIR",
              help="Where state, tokens and logs live. [env HYPERION_HOME; default ~/.hyperion]")
@click.option("--server", metavar="URL",
              help="Control plane API address. [env HYPERION_SERVER; default: from "
                   "<data dir>/controlplane.json]")
@click.option("--token", metavar="TOKEN",
              help="API token. [env HYPERION_TOKEN; default: <data dir>/admin.token]")
@click.version_option(__version__, prog_name="hyperion")
@click.pass_context
def cli(ctx: click.Context, data_dir: str | None, server: str | None, token: str | None) -> None:
    """Hyperion: one control plane for GPU machines and cloud accounts."""
    state = CliState(data_dir_option=data_dir, server_option=server, token_option=token,
                     env=dict(os.environ))
    ctx.obj = state
    ctx.call_on_close(state.close)


for _command in (*local_cluster.COMMANDS, *jobs.COMMANDS, *cluster.COMMANDS, *nodepools.COMMANDS, *cost.COMMANDS,
                 *simulate.COMMANDS):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (``hyperion = hyperion.cli.main:main``)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="hyperion")


if __name__ == "__main__":  # python -m hyperion.cli.main
    sys.exit(main())
