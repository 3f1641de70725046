"""`make policy`: checkov over template.yaml, judged against accepted.yaml.

Fails on any finding that is not accepted for that check and resource, and on
any acceptance that no longer matches a finding (so the file stays true).
Usage: check.py TEMPLATE [ACCEPTED]
"""

import json
import os
import subprocess
import sys

import yaml


def findings(template):
    checkov = os.path.join(os.path.dirname(sys.executable), "checkov")
    out = subprocess.run(
        [checkov, "-f", template, "--framework", "cloudformation", "-o", "json", "--quiet"],
        capture_output=True, text=True, check=False,
    )
    try:
        report = json.loads(out.stdout)
    except json.JSONDecodeError:
        sys.exit(f"policy: checkov did not report (exit {out.returncode}):\n{out.stderr}")
    report = report[0] if isinstance(report, list) else report
    if report.get("summary", {}).get("parsing_errors"):
        sys.exit("policy: checkov could not parse the template")
    failed = report.get("results", {}).get("failed_checks", [])
    passed = report.get("summary", {}).get("passed", 0)
    return {(f["check_id"], f["resource"].split(".")[-1], f["check_name"]) for f in failed}, passed


def main():
    template = sys.argv[1] if len(sys.argv) > 1 else "template.yaml"
    accepted_file = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "accepted.yaml")
    with open(accepted_file) as f:
        accepted = {(a["check"], r) for a in yaml.safe_load(f)["accepted"] for r in a["resources"]}
    found, passed = findings(template)
    new = sorted((c, r, n) for c, r, n in found if (c, r) not in accepted)
    stale = sorted(accepted - {(c, r) for c, r, _ in found})
    for c, r, n in new:
        print(f"policy: {r}: {c} {n} (fix it, or accept it with a reason in {accepted_file})")
    for c, r in stale:
        print(f"policy: {accepted_file} accepts {c} for {r}, which no longer fails: remove it")
    print(f"policy: {passed} checks passed, {len(found) - len(new)} findings accepted, "
          f"{len(new)} not accepted, {len(stale)} stale acceptances")
    sys.exit(1 if new or stale else 0)


if __name__ == "__main__":
    main()
