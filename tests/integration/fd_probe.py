"""A helper program for descriptor tests: run as password_command or an exec: target, it
writes to OUTFILE the descriptors above 2 it was started with (there must be none), then
optionally leaves a process behind, reads its stdin and prints a word.

usage: fd_probe.py OUTFILE [--leave-behind] [--print WORD] [--read-stdin]"""

import os
import sys


def main():
    inherited = []
    for fd in range(3, 65536):
        try:
            os.fstat(fd)
            inherited.append(str(fd))
        except OSError:
            pass
    args = sys.argv[1:]
    with open(args[0], "w") as out:
        out.write(" ".join(inherited) + "\n")
    if "--leave-behind" in args:
        # fork + exec without closing anything: it keeps whatever this process had.
        os.spawnv(os.P_NOWAIT, "/bin/sleep", ["sleep", "300"])
    if "--read-stdin" in args:
        sys.stdin.buffer.read()
    if "--print" in args:
        print(args[args.index("--print") + 1], flush=True)


if __name__ == "__main__":
    main()
