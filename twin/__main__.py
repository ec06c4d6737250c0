"""`python -m twin` and the `minimeter` command (``entry``).

A Ctrl-C while the command line's modules load is held until they are loaded (see
``twin.forking``) and is then exit status 130, as it is later; importing
``twin.cli`` outside ``entry`` would leave that window open.
"""

from __future__ import annotations


def entry() -> int:
    try:
        from twin.forking import interrupts_held

        with interrupts_held():
            from twin.cli import main
    except KeyboardInterrupt:
        return 130
    return main()


if __name__ == "__main__":
    raise SystemExit(entry())
