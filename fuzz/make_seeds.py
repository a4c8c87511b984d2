#!/usr/bin/env python3
"""Write the seed corpus under fuzz/corpus/<target>/: small valid files of each
format and a few near-misses (truncated, wrong magic, huge claims), so that the
fuzzers start from the interesting shapes. Run from anywhere; rewrites the seeds."""
import gzip, os, struct, shutil, sys

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.join(here, "corpus")


def put(target, name, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def gz(b):
    return gzip.compress(b, mtime=0)


# IDX: u8 images and labels, other element types, gzip, malformed.
def idx(code, shape, payload):
    return bytes([0, 0, code, len(shape)]) + b"".join(struct.pack(">I", d) for d in shape) + payload

images = idx(8, [2, 3, 3], bytes(range(18)))
labels = idx(8, [4], bytes([0, 1, 9, 3]))
put("idx", "images-u8", images)
put("idx", "labels-u8", labels)
put("idx", "images-u8.gz", gz(images))
put("idx", "labels-u8.gz", gz(labels))
put("idx", "i16", idx(0x0B, [2], struct.pack(">hh", -2, 300)))
put("idx", "i32", idx(0x0C, [1, 2], struct.pack(">ii", 7, -7)))
put("idx", "f32", idx(0x0D, [2, 1], struct.pack(">ff", 0.5, 1.0)))
put("idx", "f64", idx(0x0E, [1], struct.pack(">d", 2.5)))
put("idx", "i8", idx(0x09, [3], bytes([255, 0, 1])))
put("idx", "truncated", images[:-5])
put("idx", "huge-claim", idx(8, [0xFFFFFFFF, 0xFFFFFFFF], b""))
put("idx", "huge-claim.gz", gz(idx(8, [60000, 28, 28], b"\0" * 64)))
put("idx", "bad-gzip", gz(images)[:-6] + b"\0\0\0\0\0\0")

# CIFAR: one record of each format, a short one.
c10 = bytes([3]) + bytes(i % 256 for i in range(3072))
c100 = bytes([5, 42]) + bytes((7 * i) % 256 for i in range(3072))
put("cifar", "cifar10-one", c10)
put("cifar", "cifar100-one", c100)
put("cifar", "cifar10-short", c10[:100])
put("cifar", "cifar10-bad-label", bytes([10]) + c10[1:])


# NPY: each supported dtype, big-endian, version 2, object, Fortran, mismatch.
def npy(descr, shape, raw, fortran=False, version=1):
    shp = "(%s,)" % shape[0] if len(shape) == 1 else "(%s)" % ", ".join(map(str, shape))
    h = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, "True" if fortran else "False", shp)
    pre = 10 if version == 1 else 12
    h += " " * ((64 - (pre + len(h) + 1) % 64) % 64) + "\n"
    hl = struct.pack("<H", len(h)) if version == 1 else struct.pack("<I", len(h))
    return b"\x93NUMPY" + bytes([version, 0]) + hl + h.encode() + raw

put("npy", "f32", npy("<f4", [2, 2], struct.pack("<4f", 0, 0.25, 0.5, 1)))
put("npy", "f64", npy("<f8", [3], struct.pack("<3d", -1, 0, 1)))
put("npy", "u8", npy("|u1", [2, 3], bytes(range(6))))
put("npy", "i64", npy("<i8", [2], struct.pack("<2q", 1, -1)))
put("npy", "bool", npy("|b1", [2], bytes([0, 1])))
put("npy", "f8-big", npy(">f8", [1], struct.pack(">d", 2.5)))
put("npy", "v2", npy("<i4", [1], struct.pack("<i", 5), version=2))
put("npy", "object", npy("|O", [1], b"\0" * 8))
put("npy", "fortran", npy("<f4", [1, 1], b"\0" * 4, fortran=True))
put("npy", "mismatch", npy("<f4", [4], b"\0" * 8))

# CSV
put("csv", "header", b"a,b,label\n0.5,1,3\n2,-1,0\n")
put("csv", "plain", b"1,2,0\n3,4,1\n")
put("csv", "quoted-crlf", b'"x","y"\r\n1e-3,-2\r\n# comment\r\n4,5\r\n')
put("csv", "ragged", b"1,2\n3\n")
put("csv", "nan", b"1,nan\n")
put("csv", "gz", gz(b"x,y\n1,0\n2,1\n"))

# Config: the repository's example configs, and some data specs alone.
cfgdir = os.path.join(here, "..", "configs")
for n in sorted(os.listdir(cfgdir)):
    if n.endswith(".toml"):
        with open(os.path.join(cfgdir, n), "rb") as f:
            put("config", n, f.read())
specs = [
    "mnist", "fashion-mnist:/d", "cifar10:/c", "cifar100:/c,labels=coarse", "idx:a,b,c,d",
    "npy:x=a.npy,y=b.npy", "csv:t.csv,test=u.csv,label=first,header=yes,task=regression",
    "synthetic:teacher=mlp,task=classification,k=3,noise=0.5",
]
for i, s in enumerate(specs):
    put("config", "spec-%d" % i, s.encode())
put("config", "data-table", b'[data]\ndataset = "mnist"\ntrain_size = 1000\nsubset_seed = 3\nstandardize = true\n')
print("seeds written under", root, file=sys.stderr)
