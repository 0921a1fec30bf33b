"""Child processes in their own session (killable as a group) and the /proc
figures of them, shared by the fault campaign and the benchmarks."""

import os
import signal
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

TICK = os.sysconf("SC_CLK_TCK")


class Proc:
    """A child in its own session, so an error path can kill its whole group."""

    def __init__(self, argv, log_path, pipe_stdout=False):
        self.log = open(log_path, "wb")
        self.p = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE if pipe_stdout else self.log,
            stderr=self.log,
            start_new_session=True,
            cwd=ROOT,
        )
        self.pid = self.p.pid

    def cpu(self):
        fields = open("/proc/%d/stat" % self.pid).read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime

    def mem_kb(self):
        vals = dict(line.split(":", 1) for line in open("/proc/%d/status" % self.pid))
        return int(vals["VmRSS"].split()[0]), int(vals["VmHWM"].split()[0])

    def stop(self, timeout=60):
        """SIGTERM, wait; SIGKILL the group if it hangs. Returns the exit code."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()
        return self.p.returncode

    def kill(self):
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.p.wait()


def load():
    return float(open("/proc/loadavg").read().split()[0])
