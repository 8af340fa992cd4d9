"""The session file's checks (`tp_jupyter.sessionfile.parse`), without a cluster: every
fault is one line naming the file, the line and the field; a good file is normalised."""

from __future__ import annotations

import pytest

from tp_jupyter.sessionfile import InterceptEntry, SessionFileError, parse

GOOD = """\
name: work
connection:
  namespace: demo
  proxy_mode: false
intercepts:
  - workload: dataprocessingservice
    port: 8080
    service_port: http
    http_match: {x-dev: me}
  - name: vlj
    workload: verylargejavaservice
    namespace: other
    port: 8081
    http_match: [a=1, b=2]
    mount: false
"""


def refused(text: str) -> str:
    with pytest.raises(SessionFileError) as e:
        parse(text, "s.yaml")
    message = str(e.value)
    assert "\n" not in message
    return message


def test_a_good_file_is_normalised_with_defaults_from_the_connection() -> None:
    session = parse(GOOD, "s.yaml")
    assert session.name == "work" and session.connection == {"namespace": "demo",
                                                             "proxy_mode": False}
    first, second = session.intercepts
    assert first == InterceptEntry(name="dataprocessingservice-demo",
                                   workload="dataprocessingservice", namespace="demo",
                                   port=8080, service_port="http", http_match=("x-dev=me",))
    assert first.line == 6
    assert (second.name, second.namespace, second.http_match, second.mount) == (
        "vlj", "other", ("a=1", "b=2"), "false")


@pytest.mark.parametrize(("text", "expected"), [
    ("name: w\nintercepts:\n  - workload: a\n    port: x\n",
     "s.yaml:4: intercepts[0].port: expected a number"),
    ("name: w\nintercepts:\n  - workload: a\n    port: 70000\n",
     "s.yaml:4: intercepts[0].port: 70000 is not a port (1-65535)"),
    ("name: w\nintercepts:\n  - port: 1\n",
     "s.yaml:3: intercepts[0].workload: missing; name the Deployment to intercept"),
    ("name: w\nconnection:\n  context: c\n  colour: blue\n",
     "s.yaml:4: connection.colour: unknown field; expected one of kubeconfig, context, "
     "namespace, manager_namespace, proxy_mode"),
    ("intercepts: []\n",
     "s.yaml:1: name: missing; name the session (it remembers what it applied under this "
     "name)"),
    ("name: w\nintercepts:\n  - {workload: a, port: 1}\n  - {workload: a, port: 2}\n",
     "s.yaml:4: intercepts[1].name: 'a' is also the name of the intercept on line 3"),
    ("name: w\nintercepts:\n  - workload: a\n    port: 1\n    handler: f\n",
     "s.yaml:4: intercepts[0].port: an intercept with a handler is served in the kernel; "
     "drop port"),
    ("name: W!\n", "s.yaml:1: name: 'W!' is not a name (lowercase letters, digits and '-')"),
    ("name: w\nintercepts: [\n", "s.yaml:3: not YAML: expected the node content, but found "
                                  "'<stream end>'"),
])
def test_each_fault_is_refused_with_its_line_and_field(text: str, expected: str) -> None:
    assert refused(text) == expected


def test_a_bad_header_regex_is_refused_with_the_shared_spec_message() -> None:
    message = refused("name: w\nintercepts:\n  - workload: a\n    port: 1\n"
                      "    http_match:\n      x: '('\n")
    assert message.startswith("s.yaml:6: intercepts[0].http_match: --http-match x=(: "
                              "invalid regex")
