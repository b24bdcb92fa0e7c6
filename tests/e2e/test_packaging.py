#!/usr/bin/env python3
"""End-to-end: the Debian package and `cmake --install`.

cpack builds the package from this build; dpkg installs it into a scratch
root (its maintainer scripts run there too, through DPKG_ROOT), and the
layout is checked: the binaries, the unit files with the guide's hardening
(systemd-analyze verify), the system user, the directories with the
guide's ownership, the default configuration (a conffile, 0640 root:a3mailer,
that a3mailer --check-config accepts) and the monitoring files.
"""
import glob
import grp
import os
import shutil
import stat
import subprocess
import tempfile
import unittest

BIN = os.environ.get("A3_BIN_DIR", os.path.join(os.path.dirname(__file__), "../../build/tools"))
BUILD = os.path.dirname(os.path.abspath(BIN))

HARDENING = ["Type=notify", "WatchdogSec=30", "ExecReload=/bin/kill -HUP $MAINPID",
             "NoNewPrivileges=true", "PrivateTmp=true", "ProtectSystem=strict",
             "ProtectHome=true",
             "ReadWritePaths=/var/lib/a3mailer /var/log/a3mailer /run/a3mailer "
             "-/var/backups/a3mailer",
             "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
             "AmbientCapabilities=CAP_NET_BIND_SERVICE", "LimitNOFILE=65536",
             "LimitNPROC=4096", "MemoryMax=8G", "TimeoutStopSec=30", "User=a3mailer",
             "ExecStart=/usr/bin/a3mailer --config /etc/a3mailer/config.toml"]


def ids(root, name):
    """(uid, gid) of `name` in the scratch root's passwd."""
    with open(os.path.join(root, "etc", "passwd")) as f:
        for line in f:
            fields = line.split(":")
            if fields[0] == name:
                return int(fields[2]), int(fields[3])
    raise AssertionError("%s is not in %s/etc/passwd" % (name, root))


def verify(root, *units):
    """systemd-analyze verify in `root`, with the host's targets and slices."""
    unitdir = os.path.join(root, "usr", "lib", "systemd", "system")
    for f in glob.glob("/usr/lib/systemd/system/*.target") + \
            glob.glob("/usr/lib/systemd/system/*.slice"):
        target = os.path.join(unitdir, os.path.basename(f))
        if not os.path.lexists(target):
            shutil.copy(f, target, follow_symlinks=False)
    os.makedirs(os.path.join(root, "bin"), exist_ok=True)
    shutil.copy("/bin/kill", os.path.join(root, "bin", "kill"))
    return subprocess.run(["systemd-analyze", "verify", "--root=" + root, *units],
                          capture_output=True, text=True, timeout=120)


class PackagingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="a3-pkg-")
        r = subprocess.run(["cpack", "-G", "DEB", "-B", os.path.join(cls.tmp, "out")],
                           cwd=BUILD, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        cls.deb = glob.glob(os.path.join(cls.tmp, "out", "a3mailer_*.deb"))[0]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def test_the_package_declares_its_dependencies_and_conffile(self):
        info = subprocess.run(["dpkg-deb", "-f", self.deb], capture_output=True, text=True,
                              check=True).stdout
        self.assertIn("Package: a3mailer", info)
        depends = [l for l in info.splitlines() if l.startswith("Depends:")][0]
        for lib in ("systemd", "librocksdb", "libssl3", "libpq5", "librdkafka1", "libunbound8"):
            self.assertIn(lib, depends)
        conffiles = subprocess.run(["dpkg-deb", "--info", self.deb, "conffiles"],
                                   capture_output=True, text=True, check=True).stdout
        self.assertEqual(conffiles.split(), ["/etc/a3mailer/config.toml"])

    def test_installed_into_a_scratch_root_the_layout_is_the_guides(self):
        root = os.path.join(self.tmp, "root")
        for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"):
            os.makedirs(os.path.join(root, d))
        open(os.path.join(root, "var/lib/dpkg/status"), "w").close()
        # The scratch root has none of the libraries' packages: depends forced.
        r = subprocess.run(["dpkg", "--root=" + root, "--force-script-chrootless",
                            "--force-depends", "-i", self.deb], capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("Setting up a3mailer", r.stdout)

        for exe in ("usr/bin/a3mailer", "usr/bin/a3ctl"):
            mode = os.stat(os.path.join(root, exe)).st_mode
            self.assertTrue(mode & stat.S_IXUSR, exe)
        unitdir = os.path.join(root, "usr/lib/systemd/system")
        with open(os.path.join(unitdir, "a3mailer.service")) as f:
            unit = f.read().splitlines()
        for line in HARDENING:
            self.assertIn(line, unit)
        for f in ("a3mailer-backup.service", "a3mailer-backup.timer"):
            self.assertTrue(os.path.exists(os.path.join(unitdir, f)), f)
        for f in ("prometheus.yml", "alerting_rules.yml", "grafana-dashboard.json"):
            self.assertTrue(os.path.exists(os.path.join(root, "usr/share/a3mailer/monitoring", f)))
        self.assertTrue(os.path.exists(os.path.join(root, "usr/share/doc/a3mailer/docs",
                                                    "configuration.md")))

        # The system user, with no login; the directories with the guide's ownership.
        uid, gid = ids(root, "a3mailer")
        with open(os.path.join(root, "etc/passwd")) as f:
            self.assertIn(":/var/lib/a3mailer:/usr/sbin/nologin", f.read())
        expect = {"etc/a3mailer": (0, gid, 0o750), "etc/a3mailer/config.toml": (0, gid, 0o640),
                  "var/lib/a3mailer": (uid, gid, 0o750), "var/log/a3mailer": (uid, gid, 0o750),
                  "var/backups/a3mailer": (uid, gid, 0o750)}
        for path, (u, g, mode) in expect.items():
            st = os.stat(os.path.join(root, path))
            self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), (u, g, mode),
                             path)

        # The default configuration loads (and names this host first).
        r = subprocess.run([os.path.join(root, "usr/bin/a3mailer"), "--config",
                            os.path.join(root, "etc/a3mailer/config.toml"), "--check-config"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('data_dir = "/var/lib/a3mailer"', r.stdout)
        self.assertIn('output = "/var/log/a3mailer/a3mailer.log"', r.stdout)

        # The units are valid for systemd, and the check can fail.
        r = verify(root, "a3mailer.service", "a3mailer-backup.service", "a3mailer-backup.timer")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(os.path.join(unitdir, "a3mailer.service")) as f:
            broken = f.read().replace("Type=notify", "Type=notifyy").replace(
                "ExecStart=/usr/bin/a3mailer", "ExecStart=/usr/bin/a3mailerr")
        with open(os.path.join(unitdir, "broken.service"), "w") as f:
            f.write(broken)
        r = verify(root, "broken.service")
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)

        # Removing the package leaves the mail data.
        r = subprocess.run(["dpkg", "--root=" + root, "--force-script-chrootless", "--purge",
                            "a3mailer"], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertFalse(os.path.exists(os.path.join(root, "usr/bin/a3mailer")))
        self.assertTrue(os.path.isdir(os.path.join(root, "var/lib/a3mailer")))

    def test_cmake_install_lays_out_the_same_files(self):
        dest = os.path.join(self.tmp, "dest")
        r = subprocess.run(["cmake", "--install", BUILD], env=dict(os.environ, DESTDIR=dest),
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for path in ("usr/bin/a3mailer", "usr/bin/a3ctl", "etc/a3mailer/config.toml",
                     "usr/lib/systemd/system/a3mailer.service",
                     "usr/lib/sysusers.d/a3mailer.conf", "usr/lib/tmpfiles.d/a3mailer.conf",
                     "usr/share/a3mailer/monitoring/alerting_rules.yml"):
            self.assertTrue(os.path.exists(os.path.join(dest, path)), path)


if __name__ == "__main__":
    unittest.main(verbosity=2)
