#!/usr/bin/env python3
"""Peak RSS of one `linkbot diagnose` on hostile artifact pairs (BENCHMARKS.md section 5).

Writes six folders of the two Jenkins artifacts (`connector_getConnectorAPIKey.log`,
`connector_sl_configMap.log`), each file just under the default `artifact_max_bytes` (4 MiB)
except the tiny floor, runs `/usr/bin/time -v <linkbot> diagnose --dir <folder>` on each and
prints a Markdown table: peak RSS (VmHWM, "Maximum resident set size"), wall time and verdict.
`diagnose` runs the same parser the bot runs; both files are read, then parsed one after the other.

    scripts/artifact-rss.py [--bin target/debug/linkbot] [--keep DIR]

Loopback and local files only; nothing is downloaded. The inputs:

- tiny:      the `key-present-region-ok` fixture pair (the floor: binary, runtime, no tree).
- bench:     the `parse` bench's pair (benches/load.rs `big_secret_log`/`big_configmap_log`):
             a Secret of ~150k data keys plus a base64 TOML of tables, a ConfigMap of ~170k keys.
- json-arr:  `{"apiVersion":"v1","kind":…,"data":{},"junk":[[],[],…]}`: ~1.4M empty arrays.
- yaml-arr:  the same as YAML flow (`junk: [[],[],…]`).
- json-4doc: four one-line JSON documents of ~1 MiB each (`{"junk":[0,0,…]}`), none an object
             linkbot reads, so every document start is tried.
- lines:     ~2M lines of `a` and no document at all (the tolerant line scan's worst case).
- at-cap:    the largest tree still read: a JSON Secret / ConfigMap whose `data` holds 49 990
             tiny entries (just under MAX_VALUES = 100 000 values; about 1 MiB per file).
"""

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

MAX = 4 * 1024 * 1024
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY_LOG = "connector_getConnectorAPIKey.log"
CM_LOG = "connector_sl_configMap.log"


def big_secret_log(max_bytes):
    parts = ["+ kubectl get secret storage-secret-store -n kube-system -o yaml\napiVersion: v1\ndata:\n"]
    size = len(parts[0])
    i = 0
    while size < max_bytes * 3 // 4:
        line = f"  key{i}: dmFsdWU=\n"
        parts.append(line)
        size += len(line)
        i += 1
    toml = []
    toml_len = 0
    t = 0
    while size + toml_len * 4 // 3 < max_bytes - 4096:
        line = f"[t{t}]\n"
        toml.append(line)
        toml_len += len(line)
        t += 1
    encoded = base64.b64encode("".join(toml).encode()).decode()
    parts.append(
        f"  slclient.toml: {encoded}\nkind: Secret\nmetadata:\n  name: storage-secret-store\n"
        "  namespace: kube-system\ntype: Opaque\n"
    )
    return "".join(parts)


def big_configmap_log(max_bytes):
    parts = ["+ kubectl get configmap satellite-link-config -n satellite-link -o yaml\napiVersion: v1\ndata:\n"]
    size = len(parts[0])
    i = 0
    while size < max_bytes - 4096:
        line = f"  key{i}: value-{i}\n"
        parts.append(line)
        size += len(line)
        i += 1
    parts.append("  region: us-east\nkind: ConfigMap\nmetadata:\n  name: satellite-link-config\n")
    return "".join(parts)


def json_arrays(kind, name):
    head = f'{{"apiVersion":"v1","kind":"{kind}","metadata":{{"name":"{name}"}},"data":{{}},"junk":['
    n = (MAX - 64 - len(head)) // 3
    return head + ",".join(["[]"] * n) + "]}\n"


def yaml_arrays(kind, name):
    head = f"apiVersion: v1\nkind: {kind}\nmetadata:\n  name: {name}\ndata: {{}}\njunk: ["
    n = (MAX - 64 - len(head)) // 3
    return head + ",".join(["[]"] * n) + "]\n"


def json_four_docs():
    n = (MAX // 4 - 64) // 2
    doc = '{"junk":[' + ",".join(["0"] * n) + "]}\n"
    return doc * 4


def lines_only():
    return "a\n" * ((MAX - 64) // 2)


def at_cap(kind, name, key, value):
    entries = ",".join(f'"k{i}":""' for i in range(49_990))
    return (f'{{"apiVersion":"v1","kind":"{kind}","metadata":{{"name":"{name}"}},'
            f'"data":{{{entries},"{key}":"{value}"}}}}\n')


def inputs():
    fixture = os.path.join(ROOT, "tests", "fixtures", "artifacts", "key-present-region-ok")
    with open(os.path.join(fixture, KEY_LOG)) as f:
        tiny_key = f.read()
    with open(os.path.join(fixture, CM_LOG)) as f:
        tiny_cm = f.read()
    yield "tiny", "tiny valid pair (floor: binary, runtime)", tiny_key, tiny_cm
    yield ("bench", "the `parse` bench's pair (150k-key Secret + base64 TOML of tables, 170k-key ConfigMap)",
           big_secret_log(MAX), big_configmap_log(MAX))
    yield ("json-arr", 'JSON `{"kind":"Secret",…,"junk":[[],[],…]}`: 1.4M empty arrays',
           json_arrays("Secret", "storage-secret-store"), json_arrays("ConfigMap", "satellite-link-config"))
    yield ("yaml-arr", "the same as YAML flow (`junk: [[],[],…]`)",
           yaml_arrays("Secret", "storage-secret-store"), yaml_arrays("ConfigMap", "satellite-link-config"))
    yield "json-4doc", "four JSON documents of 1 MiB each per file", json_four_docs(), json_four_docs()
    yield "lines", "2M lines `a`, no document (line scan only)", lines_only(), lines_only()
    good = re.search(r"slclient\.toml:\s*(\S+)", tiny_key).group(1)
    yield ("at-cap", "at the cap: JSON `data` of 49 990 tiny entries (~1 MiB per file, read)",
           at_cap("Secret", "storage-secret-store", "slclient.toml", good),
           at_cap("ConfigMap", "satellite-link-config", "region", "us-east"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "debug", "linkbot"))
    ap.add_argument("--keep", help="write the folders here and keep them")
    args = ap.parse_args()
    base = args.keep or tempfile.mkdtemp(prefix="linkbot-artifact-rss-")
    os.makedirs(base, exist_ok=True)
    print("| artifacts (two files, each just under 4 MiB) | peak RSS | time | verdict |")
    print("|---|---:|---:|---|")
    try:
        for slug, label, key_log, cm_log in inputs():
            folder = os.path.join(base, slug)
            os.makedirs(folder, exist_ok=True)
            for name, text in ((KEY_LOG, key_log), (CM_LOG, cm_log)):
                data = text.encode()
                assert len(data) < MAX, (slug, name, len(data))
                with open(os.path.join(folder, name), "wb") as f:
                    f.write(data)
            run = subprocess.run(
                ["/usr/bin/time", "-v", args.bin, "diagnose", "--dir", folder,
                 "--region", "us-east", "--format", "json"],
                capture_output=True, text=True, timeout=600,
            )
            rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr)
            wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", run.stderr)
            try:
                verdict = json.loads(run.stdout).get("verdict", "?")
            except ValueError:
                verdict = f"exit {run.returncode}"
            mib = int(rss.group(1)) / 1024 if rss else float("nan")
            print(f"| {label} | {mib:.1f} MiB | {wall.group(1) if wall else '?'} | `{verdict}` |")
            sys.stdout.flush()
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
