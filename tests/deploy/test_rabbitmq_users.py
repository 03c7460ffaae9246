"""deploy/rabbitmq/users.sh gives the users exactly the permissions of the Permission objects
in deploy/k8s/base/rabbitmq-users.yaml, and never passes a password as an argument.
(tests/integration/test_least_privilege.py runs the script and the processes for real.)"""

from __future__ import annotations

import re
import subprocess

from tests.deploy.common import DEPLOY, of_kind, rendered

SCRIPT = DEPLOY / "rabbitmq" / "users.sh"


def _assignments() -> dict[str, str]:
    return dict(re.findall(r"^([A-Z_]+)='([^']*)'$", SCRIPT.read_text(), re.MULTILINE))


def _granted() -> dict[str, tuple[str, str, str]]:
    """User name suffix -> (configure, write, read) as the script sets them."""
    values = _assignments()
    found = re.findall(r'set_permissions -p "\$VHOST" "\$PREFIX-(\w+)" "\$(\w+)" "\$(\w+)" '
                       r'"\$(\w+)"', SCRIPT.read_text())
    return {user: (values[c], values[w], values[r]) for user, c, w, r in found}


def test_the_script_grants_what_the_manifests_grant() -> None:
    permissions = of_kind(rendered("prod"), "Permission")
    expected = {name.removeprefix("zenoti-events-"): (p["spec"]["permissions"]["configure"],
                                                     p["spec"]["permissions"]["write"],
                                                     p["spec"]["permissions"]["read"])
                for name, p in permissions.items()}
    assert _granted() == expected
    tags = {u.removeprefix("zenoti-events-"): u_spec["spec"].get("tags", [])
            for u, u_spec in of_kind(rendered("prod"), "User").items()}
    assert tags == {"topology": ["policymaker"], "ingress": [], "worker": [], "console": [],
                    "keda": ["monitoring"]}
    assert 'user "$PREFIX-console" "$CONSOLE_PASSWORD" ""' in SCRIPT.read_text()
    assert 'user "$PREFIX-keda" "$KEDA_PASSWORD" monitoring' in SCRIPT.read_text()
    assert 'user "$PREFIX-topology" "$TOPOLOGY_PASSWORD" policymaker' in SCRIPT.read_text()


def test_passwords_reach_rabbitmqctl_on_stdin_only() -> None:
    text = SCRIPT.read_text()
    for line in text.splitlines():
        if re.search(r"\b(add_user|change_password|authenticate_user)\b", line):
            assert re.fullmatch(r'\s*printf .%s\\n. "\$2" \| ctl (add_user|change_password) "\$1"',
                                line), line
    assert "PASSWORD" not in "".join(line for line in text.splitlines() if "ctl " in line
                                     and not line.lstrip().startswith("#"))


def test_the_script_parses() -> None:
    subprocess.run(["sh", "-n", str(SCRIPT)], check=True, timeout=30)
