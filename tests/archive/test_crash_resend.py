"""`pacsbrowser listen` killed with SIGKILL in the middle of a write while storescu sends (the
durable-before-reply path, folder fsyncs shared): on the next start the archive is consistent with
no half file listed, and sending what was not acknowledged again completes it.

(What the kill itself leaves, acknowledged instance by instance: test_crash.py.)
"""

from __future__ import annotations

import pydicom
import pytest
from pydicom.uid import generate_uid

from pacsbrowser.core.archive import Archive

from .helpers import (
    LOOPBACK,
    ListenerProcess,
    acknowledged,
    lab_files,
    make_dataset,
    our_files,
    run_storescu,
    save,
    start_storescu,
    temp_files,
)
from .test_crash import check_archive_matches_sources, kill_while_writing

pytestmark = pytest.mark.timeout(180)


@pytest.mark.interop  # DCMTK storescu sends
def test_killed_listener_then_a_second_send_completes_the_archive(pacsbrowser_cmd, child_env, workdir, lab_data):
    study, series = generate_uid(), generate_uid()
    big = [save(make_dataset(study, series, patient_id="BIG", extra_bytes=1_500_000, fill=n),
                workdir / "big" / f"{n}.dcm") for n in range(24)]
    files = [*big, *lab_files(lab_data)]
    sources = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID): f for f in files}
    root = workdir / "archive"
    command = [*pacsbrowser_cmd, "listen", "--host", LOOPBACK, "--port", "0", "--aet", "PBTEST", "--archive",
               str(root)]
    with ListenerProcess(command, child_env) as listener:
        port = listener.wait_ready()
        sender = start_storescu(port, files, extra=["-nh"])
        try:
            writing = kill_while_writing(listener, root / study / series, sender)
            out, _ = sender.communicate(timeout=60)
        finally:
            if sender.poll() is None:
                sender.kill()
                sender.wait()
    assert writing, "no write under way was caught: the kill proves nothing"
    ok, _refused, _unanswered = acknowledged(out)
    assert temp_files(root), "the kill left no temporary file"

    # The next start: repaired, consistent, no half file.
    with ListenerProcess(command, child_env) as listener:
        port = listener.wait_ready()
        with Archive(root, readonly=True) as seen:
            held = {row.sop_instance_uid for row in seen.instances()}
        assert len(held) >= len(ok)
        assert temp_files(root) == [], "the repair on opening left a temporary file"
        missing = [path for uid, path in sources.items() if uid not in held]
        assert missing, "everything had arrived before the kill"
        again = run_storescu(port, missing, extra=["-nh"])
        resent_ok, resent_refused, _ = acknowledged(again.stdout + again.stderr)
        assert len(resent_ok) == len(missing) and not resent_refused, again.stdout[-2000:]
    with Archive(root) as arc:
        assert {row.sop_instance_uid for row in arc.instances()} == set(sources)
        assert len(our_files(root)) == len(sources) and temp_files(root) == []
        report = arc.verify(deep=True)
        assert report.ok, report.problems
        check_archive_matches_sources(arc, sources)
    print(f"\nlistener killed after {len(ok)} of {len(files)} acknowledged; {len(held)} kept, the second "
          f"send stored the other {len(missing)}")
