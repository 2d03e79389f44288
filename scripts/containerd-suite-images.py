#!/usr/bin/env python3
"""Builds the stand-in images containerd v1.6.20's integration/client suite pulls, as OCI image
layouts (one per image, each holding a multi-platform image index), from Debian's static busybox.

Usage: containerd-suite-images.py OUTDIR [BUSYBOX]

Writes OUTDIR/<name>/ (an OCI layout whose index.json names the image by the tag
org.opencontainers.image.ref.name) and OUTDIR/images.txt with lines "<name> <tag> <ref>...",
the references the layout is to be pushed to (containerd-suite.sh pushes them with skopeo copy --all).

Every image is an index of five linux platforms: amd64 is the real one; arm64/v8, arm/v7, s390x
and ppc64le get a small layer of their own (a marker file), so that each platform's manifest,
config and layers are distinct blobs (TestImageUsage compares the sizes of one platform and all),
and TestImagePullSomePlatforms finds linux/amd64, linux/arm64/v8 and linux/s390x.

The amd64 root file system: /bin/busybox with every applet linked in /bin (as the official
busybox image has them), the official image's /etc/passwd and /etc/group (www-data is 33:33),
the mount points runc needs on a read-only root (/proc, /sys, /dev, /run: TestUserNamespaces/
ReadonlyRootFS), and /bin/nc as a wrapper script: as PID 1, busybox nc has no SIGTERM handler,
so the kernel drops the SIGTERM that TestBindLowPortNonOpt sends and the test would wait for an
exit status 143 that never comes. The wrapper runs nc as a child and on SIGTERM kills it and
exits 143 (the trap text is "image B" of chaperone's shim/README.md: no 2>/dev/null).
"""
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

MTIME = 1600000000  # fixed: the same input gives the same digests on every run

PLATFORMS = [
    {"architecture": "amd64", "os": "linux"},
    {"architecture": "arm64", "os": "linux", "variant": "v8"},
    {"architecture": "arm", "os": "linux", "variant": "v7"},
    {"architecture": "s390x", "os": "linux"},
    {"architecture": "ppc64le", "os": "linux"},
]

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""

GROUP = """root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
"""

# As PID 1 busybox nc ignores SIGTERM (no handler): run it as a child, and on SIGTERM kill it
# and exit 143 (128 + 15) as a process killed by SIGTERM would. Its exit status otherwise.
NC_WRAPPER = """#!/bin/sh
trap 'kill -TERM $child; exit 143' TERM
/bin/busybox nc "$@" &
child=$!
wait $child
"""

PAUSE = """#!/bin/sh
# Stand-in for the pause container's /pause: sleeps until SIGTERM or SIGINT.
trap 'exit 0' TERM INT
while :; do sleep 3600 & wait $!; done
"""

ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


class Layout:
    """An OCI image layout being written."""

    def __init__(self, path):
        self.path = path
        os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(path, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)

    def blob(self, data, media_type):
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.path, "blobs", "sha256", digest), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}

    def json_blob(self, obj, media_type):
        return self.blob(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode(), media_type)


class Tar:
    """An uncompressed layer tar, built in memory with fixed owners and times."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def _info(self, name, kind, mode):
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime, ti.uid, ti.gid = kind, mode, MTIME, 0, 0
        ti.uname = ti.gname = "root"
        return ti

    def dir(self, name, mode=0o755):
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode))

    def file(self, name, data, mode=0o644):
        ti = self._info(name, tarfile.REGTYPE, mode)
        ti.size = len(data)
        self.tar.addfile(ti, io.BytesIO(data))

    def symlink(self, name, target):
        ti = self._info(name, tarfile.SYMTYPE, 0o777)
        ti.linkname = target
        self.tar.addfile(ti)

    def done(self):
        self.tar.close()
        return self.buf.getvalue()


def busybox_rootfs(busybox, extra=None):
    """The amd64 base layer: busybox and its applets, users, groups and mount points."""
    t = Tar()
    for d in ["bin", "dev", "etc", "home", "proc", "run", "sys", "usr", "usr/bin", "usr/sbin",
              "sbin", "var", "var/www", "var/spool", "var/spool/mail"]:
        t.dir(d)
    t.dir("root", 0o700)
    t.dir("tmp", 0o1777)
    with open(busybox, "rb") as f:
        t.file("bin/busybox", f.read(), 0o755)
    applets = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True).stdout.split()
    for a in sorted(set(applets)):
        if a in ("busybox", "nc") or "/" in a:
            continue
        t.symlink("bin/" + a, "busybox")
    t.file("bin/nc", NC_WRAPPER.encode(), 0o755)
    t.file("etc/passwd", PASSWD.encode())
    t.file("etc/group", GROUP.encode())
    t.file("etc/hostname", b"stand-in\n")
    for name, data, mode in (extra or []):
        t.file(name, data, mode)
    return t.done()


def marker_layer(text):
    """A layer of a platform that never runs here: only a marker file."""
    t = Tar()
    t.dir("etc")
    t.file("etc/stand-in-platform", (text + "\n").encode())
    return t.done()


def gz(data):
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as g:
        g.write(data)
    return out.getvalue()


def write_image(outdir, name, tag, layers_for, config_extra):
    """One multi-platform image. layers_for(platform) -> list of uncompressed layer tars."""
    lay = Layout(os.path.join(outdir, name))
    manifests = []
    for plat in PLATFORMS:
        tars = layers_for(plat)
        layer_descs = [lay.blob(gz(t), "application/vnd.oci.image.layer.v1.tar+gzip") for t in tars]
        config = {
            "architecture": plat["architecture"],
            "os": plat["os"],
            "created": "2020-09-13T12:26:40Z",
            "config": dict(config_extra),
            "rootfs": {"type": "layers",
                       "diff_ids": ["sha256:" + hashlib.sha256(t).hexdigest() for t in tars]},
            "history": [{"created": "2020-09-13T12:26:40Z",
                         "created_by": "chaperone client-suite stand-in layer %d" % i}
                        for i in range(len(tars))],
        }
        if "variant" in plat:
            config["variant"] = plat["variant"]
        cdesc = lay.json_blob(config, "application/vnd.oci.image.config.v1+json")
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": cdesc, "layers": layer_descs}
        mdesc = lay.json_blob(manifest, "application/vnd.oci.image.manifest.v1+json")
        mdesc["platform"] = dict(plat)
        manifests.append(mdesc)
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": manifests}
    idesc = lay.json_blob(index, "application/vnd.oci.image.index.v1+json")
    idesc["annotations"] = {"org.opencontainers.image.ref.name": tag}
    with open(os.path.join(lay.path, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [idesc]}, f)


def main():
    outdir = sys.argv[1]
    busybox = sys.argv[2] if len(sys.argv) > 2 else "/bin/busybox"
    os.makedirs(outdir, exist_ok=True)
    base = busybox_rootfs(busybox)
    busybox_cfg = {"Env": ENV, "Cmd": ["sh"]}

    def plain(kind, amd64_layers):
        def layers_for(plat):
            if plat["architecture"] == "amd64":
                return amd64_layers
            p = "/".join(v for v in (plat["os"], plat["architecture"], plat.get("variant")) if v)
            return [marker_layer("%s %s" % (kind, p))]
        return layers_for

    images = []
    # ghcr.io/containerd/busybox:1.32 (testImage) and registry.k8s.io/e2e-test-images/busybox:1.29-2.
    write_image(outdir, "busybox", "1.32", plain("busybox", [base]), busybox_cfg)
    images.append(("busybox", "1.32", ["ghcr.io/containerd/busybox:1.32",
                                       "registry.k8s.io/e2e-test-images/busybox:1.29-2"]))
    # ghcr.io/containerd/alpine:3.14.0 (TestUserNamespaces): the busybox root with an
    # /etc/alpine-release, in one layer of its own (a different digest from busybox's).
    alpine = busybox_rootfs(busybox, [("etc/alpine-release", b"3.14.0\n", 0o644)])
    write_image(outdir, "alpine", "3.14.0", plain("alpine", [alpine]),
                {"Env": ENV, "Cmd": ["/bin/sh"]})
    images.append(("alpine", "3.14.0", ["ghcr.io/containerd/alpine:3.14.0"]))
    # k8s.gcr.io/pause:3.6 and registry.k8s.io/pause:3.6: busybox and a /pause script.
    pause_layer = busybox_rootfs(busybox, [("pause", PAUSE.encode(), 0o755)])
    write_image(outdir, "pause", "3.6", plain("pause", [pause_layer]),
                {"Env": ENV, "Entrypoint": ["/pause"], "User": "65535:65535"})
    images.append(("pause", "3.6", ["k8s.gcr.io/pause:3.6", "registry.k8s.io/pause:3.6"]))
    # ghcr.io/containerd/volume-copy-up:2.1 (TestExportAndImportMultiLayer): three layers, the
    # busybox root, a volume directory with a file, and a change to that file.
    t = Tar()
    t.dir("test_dir")
    t.file("test_dir/test_file", b"test_content\n")
    layer2 = t.done()
    t = Tar()
    t.dir("test_dir")
    t.file("test_dir/test_file2", b"test_content2\n")
    layer3 = t.done()
    write_image(outdir, "volume-copy-up", "2.1", plain("volume-copy-up", [base, layer2, layer3]),
                {"Env": ENV, "Cmd": ["sh"], "Volumes": {"/test_dir": {}}})
    images.append(("volume-copy-up", "2.1", ["ghcr.io/containerd/volume-copy-up:2.1"]))

    with open(os.path.join(outdir, "images.txt"), "w") as f:
        for name, tag, refs in images:
            f.write("%s %s %s\n" % (name, tag, " ".join(refs)))


if __name__ == "__main__":
    main()
