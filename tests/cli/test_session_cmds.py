"""`session start|stop|get|list|smoke` end to end: the real CLI against the real emulator.

What a conversation was started with is read back from the emulator itself
(`GET /v3/conversations/{id}`), and "no request was made" / "nothing is left
running" are the emulator's own counters (`/_emulator/stats`).
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from support.e2e import CLIENT, E2EProject

PRESETS = """\
kind: ConversationPreset
name: tommy-support
spec:
  character: tommy
  maxSeconds: 600
  promptCtx: The customer came from the help page.
  inputs:
    customer_name: {required: true, description: "First name, as the customer gave it"}
    plan: {default: Trailhead}
  promptTemplateVars:
    customer_name: "{{ customer_name }} ({{ plan }} plan, ${vars.company}, {{ character.displayName }})"
"""
INPUTS_LINE = 7  # `inputs:` in PRESETS


@pytest.fixture
def sessions(project: E2EProject) -> E2EProject:
    (project.root / "characters" / "presets.yaml").write_text(PRESETS)
    return project


@pytest.fixture
def applied(sessions: E2EProject) -> E2EProject:
    result = sessions.cli("apply", "--env", "test", "--yes")
    assert result.code == 0, result.text
    return sessions


def stats(p: E2EProject) -> dict:
    with p.http() as http:
        return http.get("/_emulator/stats").json()


def reset_stats(p: E2EProject) -> None:
    with p.http() as http:
        http.post("/_emulator/stats/reset")


def set_faults(p: E2EProject, **faults: object) -> None:
    with p.http() as http:
        answer = http.post("/_emulator/faults", json=faults)
        assert answer.status_code == 200, answer.text


def open_conversations(p: E2EProject) -> int:
    return stats(p)["openConversations"]["equos"]


def conversation_posts(p: E2EProject) -> int:
    return stats(p)["requests"].get("POST /v3/conversations", 0)


def character_id(p: E2EProject, key: str = "tommy") -> str:
    state = json.loads(p.state_file.read_text())
    return state["resources"][f"Character/{key}"]["id"]


def test_start_sends_what_render_shows_with_the_state_id_and_the_client(applied: E2EProject):
    p = applied
    rendered = p.cli(
        "render", "--env", "test", "ConversationPreset/tommy-support", "--var", "customer_name=Ann"
    )
    assert rendered.code == 0, rendered.text
    assert "customer_name: Ann (Trailhead plan, Acme, Tommy)" in rendered.out
    assert "required: true" in rendered.out  # render lists the inputs

    result = p.cli(
        "session", "start", "tommy-support", "--env", "test", "--var", "customer_name=Ann", "--json"
    )
    assert result.code == 0, result.text
    started = json.loads(result.out)
    conversation_id = started["conversation"]["id"]
    assert started["tokens"] == {"remoteAgent": None, "consumer": None}
    with p.http() as http:
        live = http.get(f"/v3/conversations/{conversation_id}").json()
    assert live["promptTemplateVars"] == {"customer_name": "Ann (Trailhead plan, Acme, Tommy)"}
    assert live["characterId"] == character_id(p)
    assert live["client"] == CLIENT
    assert live["maxSeconds"] == 600
    assert live["promptCtx"] == "The customer came from the help page."
    assert live["status"] == "running"
    assert open_conversations(p) == 1


def test_start_text_names_id_status_room_server_and_tokens(applied: E2EProject, tmp_path: Path):
    values = tmp_path / "values.json"
    values.write_text('{"customer_name": "Bob", "plan": "Summit"}')
    result = applied.cli(
        "session", "start", "tommy-support", "--env", "test", "--values", str(values),
        "--name", "support call", "--max-seconds", "120", "--consumer", "web-7:Bob",
    )  # fmt: skip
    assert result.code == 0, result.text
    lines = result.out.splitlines()
    assert lines[0].startswith("Started conversation conv_")
    assert "  status:     running" in lines
    assert any(line.startswith("  room:       room_conv_") for line in lines)
    assert "  server URL: wss://livekit.emulator.invalid" in lines
    assert "  max:        120 s" in lines
    assert "  consumer token: *** (hidden: --show-tokens shows it)" in lines
    conversation_id = lines[0].split()[2]
    with applied.http() as http:
        live = http.get(f"/v3/conversations/{conversation_id}").json()
    assert live["name"] == "support call"
    assert live["maxSeconds"] == 120
    assert live["consumerIdentity"] == "web-7"
    assert live["promptTemplateVars"]["customer_name"].startswith("Bob (Summit plan")


def test_a_missing_input_fails_with_file_line_and_no_request(applied: E2EProject):
    p = applied
    reset_stats(p)
    result = p.cli("session", "start", "tommy-support", "--env", "test")
    assert result.code == 1
    assert f"characters/presets.yaml:{INPUTS_LINE}:3: ConversationPreset 'tommy-support'" in (
        result.err
    )
    assert "required input 'customer_name' was not passed" in result.err
    assert "--var customer_name=" in result.err
    typo = p.cli(
        "session", "start", "tommy-support", "--env", "test",
        "--var", "customer_name=Ann", "--var", "plann=Summit",
    )  # fmt: skip
    assert typo.code == 1
    assert "'plann' is not an input of this preset (did you mean 'plan'?)" in typo.err
    smoke = p.cli("session", "smoke", "tommy-support", "--env", "test")
    assert smoke.code == 1
    assert "required input 'customer_name'" in smoke.err
    assert conversation_posts(p) == 0
    assert stats(p)["totalRequests"] == 0  # refused before connecting at all


def test_a_character_not_applied_yet_says_to_run_apply(sessions: E2EProject):
    result = sessions.cli(
        "session", "start", "tommy-support", "--env", "test", "--var", "customer_name=Ann"
    )
    assert result.code == 1
    assert "Character 'tommy', which is not applied in environment 'test' yet" in result.err
    assert "run `avatarsync apply --env test` first" in result.err
    assert conversation_posts(sessions) == 0


def test_maxseconds_bounds_and_promptctx_size_are_validated_with_place(sessions: E2EProject):
    presets = sessions.root / "characters" / "presets.yaml"
    presets.write_text(
        PRESETS.replace("maxSeconds: 600", "maxSeconds: 100000").replace(
            "promptCtx: The customer came from the help page.", "promptCtx: " + "x" * 16001
        )
    )
    result = sessions.cli("validate")
    assert result.code == 1
    assert "characters/presets.yaml:5:15:" in result.err  # maxSeconds
    assert "maxSeconds must be at most 86400, not 100000" in result.err
    assert "characters/presets.yaml:6:14:" in result.err  # promptCtx
    assert "promptCtx must be at most 16000 characters, not 16001" in result.err


def test_inputs_lint_declared_unused_and_used_undeclared(sessions: E2EProject):
    presets = sessions.root / "characters" / "presets.yaml"
    presets.write_text(
        PRESETS.replace("    plan: {default: Trailhead}\n", "    plan: {default: Trailhead}\n"
                        "    unused: {default: x}\n    loose: {}\n")
        .replace("{{ plan }} plan", "{{ plann }} plan {{ loose }}")
    )  # fmt: skip
    result = sessions.cli("validate")
    assert result.code == 1
    err = result.err
    assert "characters/presets.yaml:10:5: warning: inputs.unused is declared but no" in err
    assert (
        "'plann' is not a declared input of ConversationPreset 'tommy-support' "
        "(did you mean 'plan'?)" in err
    )
    assert "input 'loose' is optional with no default" in err
    assert "inputs.plan is declared but no promptTemplateVars template uses it" in err


def test_stop_get_and_list_only_this_environments_conversations(applied: E2EProject):
    p = applied
    ids = []
    for name in ("Ann", "Bob"):
        result = p.cli(
            "session", "start", "tommy-support", "--env", "test", "--var", f"customer_name={name}",
            "--json",
        )  # fmt: skip
        assert result.code == 0, result.text
        ids.append(json.loads(result.out)["conversation"]["id"])
    with p.http() as http:  # someone else's conversation, in the same organisation
        other = http.post(
            "/v3/conversations",
            json={"name": "other", "characterId": character_id(p), "client": "someone-else"},
        ).json()["conversation"]["id"]
    listed = p.cli("session", "list", "--env", "test", "--json")
    assert listed.code == 0, listed.text
    assert sorted(c["id"] for c in json.loads(listed.out)["conversations"]) == sorted(ids)
    assert other not in p.cli("session", "list", "--env", "test").out

    stopped = p.cli("session", "stop", ids[0], "--env", "test")
    assert (stopped.code, stopped.out) == (0, f"Conversation {ids[0]}: ended\n")
    # Stopping twice is fine, even where the platform refuses it with a 400.
    set_faults(p, stopEndedAs=400)
    again = p.cli("session", "stop", ids[0], "--env", "test", "--json")
    assert again.code == 0, again.text
    assert json.loads(again.out)["conversation"]["status"] == "ended"

    running = p.cli("session", "list", "--env", "test", "--status", "running", "--json")
    assert [c["id"] for c in json.loads(running.out)["conversations"]] == [ids[1]]
    shown = p.cli("session", "get", ids[0], "--env", "test")
    assert shown.code == 0, shown.text
    assert "  status:     ended" in shown.out
    assert "timeline:" in shown.out and " ended" in shown.out
    got = json.loads(p.cli("session", "get", ids[0], "--env", "test", "--json").out)
    assert set(got["conversation"]) >= {"id", "status", "transcript", "timeline", "characterId"}

    refused = p.cli("session", "stop", other, "--env", "test")
    assert refused.code == 1
    assert "its client is 'someone-else', not 'acme-e2e'): not stopped" in refused.err
    with p.http() as http:
        assert http.get(f"/v3/conversations/{other}").json()["status"] == "running"

    missing = p.cli("session", "get", "conv_nope", "--env", "test")
    assert missing.code == 1
    assert "no conversation 'conv_nope'" in missing.err


def test_smoke_starts_checks_and_stops(applied: E2EProject):
    p = applied
    reset_stats(p)
    result = p.cli(
        "session", "smoke", "tommy-support", "--env", "test", "--var", "customer_name=Smoke",
        "--json",
    )  # fmt: skip
    assert result.code == 0, result.text
    report = json.loads(result.out)
    assert report["ok"] is True
    assert [c["name"] for c in report["checks"]] == ["running", "character", "promptTemplateVars"]
    assert report["stopped"] is True and report["finalStatus"] == "ended"
    requests = stats(p)["requests"]
    assert requests == {
        "POST /v3/conversations": 1,
        "GET /v3/conversations/{id}": 1,
        "POST /v3/conversations/{id}/stop": 1,
    }
    assert report["requests"] == 3
    assert open_conversations(p) == 0


def test_smoke_stops_even_when_the_first_stop_fails(applied: E2EProject):
    p = applied
    reset_stats(p)
    set_faults(p, failNext={"POST /v3/conversations/{id}/stop": 1})
    result = p.cli("session", "smoke", "tommy-support", "--env", "test", "--var", "customer_name=X")
    assert result.code == 0, result.text
    assert stats(p)["requests"]["POST /v3/conversations/{id}/stop"] == 2  # failed once, retried
    assert stats(p)["faults"]["errors"] >= 1
    assert open_conversations(p) == 0


def test_smoke_that_times_out_fails_and_still_stops(applied: E2EProject):
    p = applied
    set_faults(p, latencyMs=1500)
    result = p.cli(
        "session", "smoke", "tommy-support", "--env", "test", "--var", "customer_name=X",
        "--timeout", "2",
    )  # fmt: skip
    assert result.code == 1, result.text
    assert "timed out after 2 s" in result.out
    assert "  stopped   conv_" in result.out
    assert result.out.splitlines()[-1].startswith("FAILED")
    assert open_conversations(p) == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_the_check_still_stops_the_conversation(applied: E2EProject, sig):
    p = applied
    set_faults(p, latencyMs=1500)  # every request takes 1.5 s: the check is slow enough
    proc = p.popen("session", "smoke", "tommy-support", "--env", "test", "--var", "customer_name=X")
    deadline = time.monotonic() + 30
    while open_conversations(p) == 0:  # the conversation exists: the check is under way
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert f"{sig.name}: stopping the conversation before exiting" in err
    assert "was stopped" in err
    assert open_conversations(p) == 0


def test_a_signal_while_the_start_is_on_its_way_still_stops_what_it_started(
    applied: E2EProject,
):
    p = applied
    set_faults(p, latencyMs=2000)
    proc = p.popen("session", "smoke", "tommy-support", "--env", "test", "--var", "customer_name=X")
    deadline = time.monotonic() + 30
    while stats(p)["inFlight"] == 0:  # the start's POST is at the emulator, not answered yet
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert open_conversations(p) == 0 and conversation_posts(p) == 0
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "was stopped" in err
    requests = stats(p)["requests"]
    assert requests["POST /v3/conversations"] == 1
    assert requests["POST /v3/conversations/{id}/stop"] == 1
    assert open_conversations(p) == 0


def test_an_interrupted_start_leaves_no_conversation_running(applied: E2EProject):
    p = applied
    set_faults(p, latencyMs=2000)
    proc = p.popen("session", "start", "tommy-support", "--env", "test", "--var", "customer_name=X")
    deadline = time.monotonic() + 30
    while stats(p)["inFlight"] == 0:  # the POST is at the emulator, not answered yet
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "Interrupted." in err
    assert stats(p)["requests"]["POST /v3/conversations/{id}/stop"] == 1
    assert open_conversations(p) == 0


def test_stopping_an_ended_conversation_is_done_even_when_the_platform_answers_400(
    applied: E2EProject,
):
    import avatarsync

    p = applied
    result = p.cli(
        "session", "start", "tommy-support", "--env", "test", "--var", "customer_name=A", "--json"
    )
    conversation_id = json.loads(result.out)["conversation"]["id"]
    sessions = avatarsync.SessionClient(p.server.url, p.key)
    assert sessions.stop(conversation_id).status == "ended"
    set_faults(p, stopEndedAs=400)
    assert sessions.stop(conversation_id).status == "ended"  # a 400, read back: ended
    assert stats(p)["requests"]["POST /v3/conversations/{id}/stop"] == 2
    with pytest.raises(avatarsync.SessionError, match="no conversation 'conv_nope'"):
        sessions.stop("conv_nope")
