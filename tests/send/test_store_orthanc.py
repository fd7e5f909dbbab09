"""Sending the lab's data set to a real Orthanc with `pacsbrowser store`, one and four
associations: every instance is found again by C-FIND (DCMTK findscu) and every data set Orthanc
keeps is byte for byte the one in the source file (sent as stored, RLE included: Orthanc accepts it).
The times are printed; ours against DCMTK's storescu is the `store` case of `make bench`."""

from __future__ import annotations

import re
import time

import pytest

from tests.lab.data import Catalog

from .helpers import dataset_bytes, find_all_instances, orthanc_file, store_cli


@pytest.mark.parametrize("parallel", [1, 4])
def test_data_set_sent_and_found_again(parallel, lab_data: Catalog, orthanc_empty, workdir):
    started = time.perf_counter()
    result = store_cli(orthanc_empty, lab_data.root, parallel=parallel)
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, (result.stdout, result.stderr)
    n = len(lab_data.instances)
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith(f"Stored {n} of {n} files"), summary
    assert f"over {parallel} association" in summary, summary
    sending = re.search(r" in ([\d.]+) s", summary).group(1)
    print(f"\n{n} files to Orthanc, --parallel {parallel}: {elapsed:.3f} s with start-up, {sending} s sending")
    assert result.stderr == ""  # no problem lines

    found = find_all_instances(orthanc_empty)
    assert found == {i.sop_instance_uid: i.sop_class_uid for i in lab_data.instances}

    for instance in lab_data.instances:  # sent as stored, RLE included
        received = orthanc_file(orthanc_empty, instance.sop_instance_uid, workdir)
        assert dataset_bytes(received) == dataset_bytes(instance.path), instance.path


def test_a_folder_with_bad_files_sends_the_good_ones_and_names_the_bad(lab_data: Catalog, orthanc_empty,
                                                                       workdir):
    folder = workdir / "dropped"
    (folder / "sub").mkdir(parents=True)
    good = [lab_data.uncompressed_instances()[0], lab_data.rle_instances()[0], lab_data.instances[-1]]
    for number, instance in enumerate(good):
        target = folder / ("sub" if number == 2 else "") / f"good{number}.dcm"
        target.write_bytes(instance.path.read_bytes())
    (folder / "notes.txt").write_text("Patient called back, see report.\n")
    whole = lab_data.uncompressed_instances()[1].path.read_bytes()
    (folder / "truncated.dcm").write_bytes(whole[: len(whole) // 2])
    (folder / "empty.dcm").write_bytes(b"")

    result = store_cli(orthanc_empty, folder, parallel=2)

    assert result.returncode == 9, (result.stdout, result.stderr)  # EXIT_PARTIAL
    problems = {line.split(": ", 1)[0].split()[-1]: line for line in result.stderr.strip().splitlines()}
    assert set(problems) == {str(folder / n) for n in ("notes.txt", "truncated.dcm", "empty.dcm")}, result.stderr
    assert problems[str(folder / "notes.txt")].startswith("skipped") and "not a DICOM file" in problems[str(folder / "notes.txt")]
    assert "truncated DICOM file" in problems[str(folder / "truncated.dcm")]
    assert "an empty file" in problems[str(folder / "empty.dcm")]
    assert "Traceback" not in result.stderr
    assert result.stdout.strip().startswith("Stored 3 of 6 files"), result.stdout
    assert "3 skipped" in result.stdout
    assert orthanc_empty.sop_instance_uids() == {i.sop_instance_uid for i in good}


def test_a_refused_connection_is_a_network_exit_status(unused_port, lab_data: Catalog):
    class Nowhere:
        host, port, aet = "127.0.0.1", unused_port, "NOBODY"

    result = store_cli(Nowhere, lab_data.paths()[0])
    assert result.returncode == 3, (result.stdout, result.stderr)  # EXIT_CONNECTION
    assert result.stderr.strip().splitlines() == [
        line for line in result.stderr.strip().splitlines() if line.startswith("error: ")]
    assert "connection refused" in result.stderr


def test_sending_over_tls_with_a_client_certificate(lab_data: Catalog, send_orthanc_tls, certs):
    files = [i.path for i in lab_data.instances[:8]]
    result = store_cli(send_orthanc_tls, *files, parallel=2,
                       extra=["--tls", "--tls-ca", str(certs.ca_cert), "--tls-cert", str(certs.client_cert),
                              "--tls-key", str(certs.client_key)])
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert result.stdout.startswith("Stored 8 of 8 files"), result.stdout
    assert send_orthanc_tls.sop_instance_uids() == {i.sop_instance_uid for i in lab_data.instances[:8]}
