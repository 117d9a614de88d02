"""hvkit's PowerShell templates: tokenizer-level checks, and binding against the Hyper-V module's parameter sets."""

from __future__ import annotations

import json
import re

import pytest

from hvkit.backends.hyperv._session import BOOTSTRAP, PARAMS_MARK
from hvkit.backends.hyperv._templates import TEMPLATES
from hvkit.testing.hyperv_sim import CMDLETS, HyperVHost, PSError, convert_to_json, validate
from hvkit.testing.hyperv_sim._binding import CORE, SWITCHES
from hvkit.testing.hyperv_sim._psparse import PSParseError, check_template, invocations, tokenize


@pytest.mark.parametrize("template_id", sorted(TEMPLATES))
def test_template_parses_and_binds(template_id: str) -> None:
    tpl = TEMPLATES[template_id]
    text = tpl.text
    assert text.startswith(f"# hvkit-template: {tpl.id} v{tpl.version}\nparam($P)\n")
    tokens = check_template(text)
    calls = invocations(tokens, SWITCHES)
    assert calls, "a template calls cmdlets"
    for call in calls:
        assert call.name in CMDLETS or call.name in CORE, call
        validate(call, text)
    assert text.rstrip().endswith(f"ConvertTo-Json -Compress -Depth {tpl.depth}")


def test_templates_read_parameters_from_the_json_object_only() -> None:
    for tpl in TEMPLATES.values():
        assert "param($P)" in tpl.text  # the only way in for values
        assert "Invoke-Expression" not in tpl.text and "EncodedCommand" not in tpl.text
        strings = [tok.text for tok in tokenize(tpl.text) if tok.category == "str"]
        assert not any("$" in s for s in strings if not s.startswith("\\")), tpl.id


def test_bootstrap_is_one_line_and_sends_no_encoded_command() -> None:
    assert "\n" not in BOOTSTRAP
    assert "$ProgressPreference='SilentlyContinue'" in BOOTSTRAP
    assert PARAMS_MARK == "\n#hvkit-params\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("$x = 'open", "missing the terminator: '"),
        ('$x = "open', 'missing the terminator: "'),
        ("if ($a) { $b", "Missing closing '}'"),
        ("$a = (1 + 2", "Missing closing ')'"),
        ("$a = 1 }", "Unexpected token '}'"),
        ('$n = "VM $($P.Name)"', "expands a variable"),
        ('$n = "VM $P"', "expands a variable"),
        ('$h = @"\nname $($P.Name)\n"@', "expands a variable"),
        ("$h = @'\nno end", "missing the terminator: '@"),
        ("$h = @' x\n'@", "No characters are allowed after a here-string header"),
        ("Invoke-Expression $P.Code", "not allowed"),
    ],
)
def test_tokenizer_rejects(text: str, message: str) -> None:
    with pytest.raises(PSParseError, match=re.escape(message)):
        check_template(text)


def test_tokenizer_accepts_what_powershell_accepts() -> None:
    ok = "$a = 'it''s'; $b = \"tick `$x and `\"q`\"\"; $h = @'\n$P.Name stays literal\n'@\n<# block #> # line"
    check_template(ok)


@pytest.mark.parametrize(
    ("line", "error_id"),
    [
        ("Stop-VM -VM $vm -Bogus", "NamedParameterNotFound"),
        ("Start-VM -Name $a -VM $vm", "AmbiguousParameterSet"),
        ("New-VHD -SizeBytes 1GB", "MissingMandatoryParameter"),
        ("Get-VMSnapshot -Id $x -VMName $y", "AmbiguousParameterSet"),
        ("Set-VMProcessor -VM $vm -Count 2 -Count 3", "ParameterAlreadyBound"),
        ("Get-Frobnicator", "CommandNotFoundException"),
        ("ConvertTo-Json -Depht 3", "NamedParameterNotFound"),
    ],
)
def test_binding_fails_as_powershell_does(line: str, error_id: str) -> None:
    (call,) = [c for c in invocations(tokenize(line), SWITCHES)]
    with pytest.raises(PSError) as info:
        validate(call, line)
    assert info.value.error_id.split(",")[0] == error_id


@pytest.mark.parametrize(
    "line",
    [
        "Stop-VM -VM $vm -TurnOff -Force",
        "$vm | Stop-VM -Force",  # -VM bound from the pipeline
        "Get-VM -Id $x -ea SilentlyContinue",  # a common parameter's alias
        "Start-VM -VMName $n",  # an alias of -Name
        "Checkpoint-VM -VM $vm -SnapshotName $n -Pass",  # a unique prefix
        "New-VHD -Path $p -ParentPath $q -Differencing",
        "Restore-VMSnapshot -VMSnapshot $s -Confirm:$false",
    ],
)
def test_binding_accepts(line: str) -> None:
    for call in invocations(tokenize(line), SWITCHES):
        validate(call, line)


def test_host_refuses_a_tampered_template() -> None:
    host = HyperVHost()
    try:
        text = TEMPLATES["vm.power"].text.replace("Stop-VM -VM $vm -Force", "Stop-VM -VM $vm -Force -Hard")
        stdin = (BOOTSTRAP + "\n" + text + PARAMS_MARK + json.dumps({"Id": "x", "Action": "stop"})).encode()
        result = host.run("hvkit", ["powershell", "-NoProfile", "-NonInteractive", "-Command", "-"], stdin)
        assert result.exit_code == 1
        assert b"NamedParameterNotFound,Microsoft.HyperV.PowerShell.Commands.StopVM" in result.stderr
        assert b"A parameter cannot be found that matches parameter name &apos;Hard&apos;" in result.stderr or (
            b"parameter name 'Hard'" in result.stderr
        )
    finally:
        host.stop()


def test_convert_to_json_is_windows_powershell_5_1() -> None:
    import datetime as dt
    import enum

    class State(enum.IntEnum):
        Running = 2

    value = {
        "State": State.Running,
        "When": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        "Text": "<a & 'b'> \"q\" \\ \n ü",
        "Nested": {"Deeper": {"Deepest": 1}},
        "List": [1, {"A": 1}],
    }
    out = convert_to_json(value, depth=2)
    assert '"State":2' in out
    assert '"When":"\\/Date(1704164645000)\\/"' in out
    assert '"Text":"\\u003ca \\u0026 \\u0027b\\u0027\\u003e \\"q\\" \\\\ \\n ü"' in out
    assert '"Nested":{"Deeper":"@{Deepest=1}"}' in out  # 5.1 truncates silently below -Depth
    assert '"List":[1,"@{A=1}"]' in out
    assert json.loads(out)["When"] == "/Date(1704164645000)/"


def test_stderr_has_the_shape_of_a_real_powershell_clixml_stream() -> None:
    """The model's stderr parses like the recorded sample: same tags, progress objects, error lines (pywinrm too)."""
    import xml.etree.ElementTree as ET
    from pathlib import Path

    import winrm

    sample = (Path(__file__).parent / "data" / "stderr-clixml-error.pywinrm-test.bin").read_bytes()
    host = HyperVHost()
    try:
        stdin = (
            BOOTSTRAP + "\n" + TEMPLATES["vm.get"].text + PARAMS_MARK + json.dumps({"Id": None, "Name": "x"})
        ).encode()
        ours = host.run("hvkit", ["powershell", "-NoProfile", "-NonInteractive", "-Command", "-"], stdin).stderr
    finally:
        host.stop()

    def shape(data: bytes) -> set[tuple[str, tuple[str, ...]]]:
        assert data.startswith(b"#< CLIXML\r\n")
        root = ET.fromstring(data.split(b"\r\n", 1)[1])
        return {(node.tag, tuple(sorted(node.attrib))) for node in root.iter()}

    assert shape(ours) == shape(sample)  # progress record (first use) and <S S="Error"> lines, nothing else
    cleaned = winrm.Session("https://unused", auth=("u", "p"))._clean_error_msg(ours).decode()
    assert "+ CategoryInfo          : ObjectNotFound: (x:String) [Write-Error], WriteErrorException" in cleaned
    assert "+ FullyQualifiedErrorId : hvkit.VMNotFound" in cleaned
