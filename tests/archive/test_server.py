"""The Storage SCP against DCMTK's storescu (and pynetdicom as a sender where exact statuses count)."""

from __future__ import annotations

import asyncio
import errno
import socket
import subprocess
import threading
from collections import Counter
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    generate_uid,
)

import pacsbrowser.core.archive.writer as archive_module  # _write_chunks: the write path's test hook
from pacsbrowser.core.archive import Archive
from pacsbrowser.core.client import DICOMClient, VerificationService
from pacsbrowser.core.errors import AssociationRejected, ListenerError
from pacsbrowser.core.executor import LoopPoster, run_blocking
from pacsbrowser.core.records import NO_RETRY, Received, Timeouts, TLSConfiguration
from pacsbrowser.core.server import ArchiveServer

from .helpers import (
    LOOPBACK,
    dataset_bytes,
    dcmtk_env,
    lab_files,
    make_dataset,
    our_files,
    save,
    storescu_command,
    temp_files,
    write_storescu_config,
)

AET = "PBTEST"


def run(coro, timeout: float = 90.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def storescu(port: int, files, timeout: float = 60.0, **options) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *storescu_command(port, files, **options), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL, env=dcmtk_env())
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode, out.decode(errors="replace")


async def collect(scp: ArchiveServer, into: list[Received]) -> None:
    async for record in scp:
        into.append(record)


def assert_stored_as_sent(arc: Archive, source: Path) -> None:
    """The archived instance of `source` is in the index, with the very bytes of its data set."""
    ds = pydicom.dcmread(source, stop_before_pixels=True)
    uid = ds["SOPInstanceUID"].value
    row = arc.instance(uid if isinstance(uid, str) else "\\".join(uid))  # a backslash makes several values
    assert row is not None, f"{source} is not in the index"
    assert row.transfer_syntax_uid == ds.file_meta.TransferSyntaxUID
    assert dataset_bytes(row.path) == dataset_bytes(source)
    assert pydicom.dcmread(row.path) == pydicom.dcmread(source)  # element by element, pixel data too
    root = arc.root.resolve()
    assert row.path.resolve().is_relative_to(root)


def assert_consistent(arc: Archive) -> None:
    report = arc.verify(deep=True)
    assert report.ok, report.problems
    assert report.files == report.rows
    assert temp_files(arc.root) == []


# ---- receiving


@pytest.mark.interop  # DCMTK storescu sends
def test_storescu_sends_the_whole_lab_set(archive, lab_data):
    callback: list[Received] = []
    streamed: list[Received] = []

    async def main():
        scp = ArchiveServer(0, AET, archive, host=LOOPBACK, on_image_received=callback.append)
        await scp.start()
        consumer = asyncio.create_task(collect(scp, streamed))
        try:
            code, out = await storescu(scp.address[1], lab_files(lab_data), calling="MODALITY1")
        finally:
            await scp.stop()
        await asyncio.wait_for(consumer, 10)
        return code, out, scp.stats

    code, out, stats = run(main())
    assert code == 0, out
    assert out.count("Received Store Response (Success)") == len(lab_data.instances)
    assert stats.stored == len(lab_data.instances) and stats.failed == 0
    assert sorted(r.sop_instance_uid for r in streamed) == sorted(i.sop_instance_uid for i in lab_data.instances)
    assert streamed == callback
    for record in streamed:
        source = lab_data.instance(record.sop_instance_uid)
        assert (record.study_instance_uid, record.series_instance_uid) == (source.study_uid, source.series_uid)
        assert record.transfer_syntax_uid == source.transfer_syntax_uid
        assert record.calling_ae == "MODALITY1" and record.peer.startswith("127.0.0.1:")
        assert record.path == archive.path_of(record.sop_instance_uid) and not record.replaced
        patient = lab_data.patient(source.patient_id)
        assert record.patient_id == patient.patient_id and record.patient_name == patient.name
        assert patient.patient_id not in repr(record) and patient.name not in repr(record)
    for instance in lab_data.instances:
        assert_stored_as_sent(archive, instance.path)
    assert {t for t in (r.transfer_syntax_uid for r in archive.instances())} == lab_data.transfer_syntaxes()
    assert archive.counts()["instances"] == len(lab_data.instances)
    assert_consistent(archive)


def test_subscribers_each_see_every_record_and_a_failing_one_stops_nothing(archive, lab_data, caplog):
    files = lab_files(lab_data)
    first: list[Received] = []
    second: list[Received] = []
    awaited: list[Received] = []
    late: list[Received] = []
    failures = 0

    def broken(record: Received) -> None:
        nonlocal failures
        failures += 1
        raise RuntimeError("a subscriber's bug")

    async def slow(record: Received) -> None:
        await asyncio.sleep(0)
        awaited.append(record)

    async def main():
        scp = ArchiveServer(0, AET, archive, host=LOOPBACK, on_image_received=first.append)
        gone = scp.subscribe(broken)
        scp.subscribe(second.append)
        scp.subscribe(slow)
        await scp.start()
        try:
            code, out = await storescu(scp.address[1], files[:3])
            assert code == 0, out
            await run_blocking(archive.flush)  # the three records are posted to the loop before this returns
            with gone:
                pass  # leaving the block unsubscribes `broken`
            gone.cancel()  # twice is harmless
            with scp.subscribe(late.append) as subscription:
                assert subscription.active and scp.subscribers == 4
                code, out = await storescu(scp.address[1], files[3:5])
                assert code == 0, out
                await run_blocking(archive.flush)
            assert not subscription.active and scp.subscribers == 3
            code, out = await storescu(scp.address[1], files[5:6])
            assert code == 0, out
        finally:
            await scp.stop()
        return scp.stats

    stats = run(main())
    assert stats.stored == 6 and stats.failed == 0
    assert len(first) == 6 and second == first and awaited == first
    assert failures == 3 and "a subscriber's bug" in caplog.text
    assert late == first[3:5]


def test_records_reach_the_loop_in_groups_in_their_order(archive, workdir, monkeypatch):
    """The indexer thread wakes the loop once per group of records, not once per record: while the
    loop is busy (a subscriber blocking it for 0.3 s on the first record), the records indexed
    meanwhile wait and come in one delivery, every one of them, once, in the order they were sent."""
    study, series = generate_uid(), generate_uid()
    files = [save(make_dataset(study, series, patient_id="GROUPS"), workdir / "groups" / f"{k:02}.dcm")
             for k in range(30)]
    sent = [str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID) for path in files]
    deliveries: list[int] = []
    real = LoopPoster._run

    def counted(self: LoopPoster) -> None:
        with self._lock:
            deliveries.append(len(self._calls))
        real(self)

    monkeypatch.setattr(LoopPoster, "_run", counted)
    seen: list[str] = []

    def blocking(record: Received) -> None:
        if not seen:
            import time

            time.sleep(0.3)  # the loop is busy: what is indexed meanwhile waits for the next delivery
        seen.append(record.sop_instance_uid)

    async def main():
        async with ArchiveServer(0, AET, archive, host=LOOPBACK, on_image_received=blocking) as scp:
            code, out = await storescu(scp.address[1], files)
            assert code == 0, out
            await run_blocking(archive.flush)
            for _ in range(100):  # bounded: the last delivery is posted before flush returns
                if len(seen) == len(files):
                    break
                await asyncio.sleep(0.02)

    run(main())
    assert seen == sent
    assert sum(deliveries) == len(files)
    assert len(deliveries) < len(files) and max(deliveries) > 1


def _compressed_set(lab_data, folder: Path) -> list[Path]:
    """One file per transfer syntax we claim to accept, each with its own SOP Instance UID."""
    ct = next(i for i in lab_data.instances if i.modality == "CT" and not i.is_compressed).path
    mr = next(i for i in lab_data.instances if i.modality == "MR" and not i.is_compressed).path
    us = next(i for i in lab_data.instances if i.modality == "US" and i.frames == 1 and not i.is_compressed).path

    def fresh(path: Path, name: str) -> Path:
        ds = pydicom.dcmread(path)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        return save(ds, folder / "plain" / f"{name}.dcm")

    out: list[Path] = [fresh(ct, "explicit")]
    for name, ts in (("implicit", ImplicitVRLittleEndian), ("deflated", DeflatedExplicitVRLittleEndian)):
        ds = pydicom.dcmread(fresh(ct, name))
        ds.file_meta.TransferSyntaxUID = ts
        out.append(save(ds, folder / f"{name}.dcm"))
    for name, ts in (("rle", RLELossless), ("j2k", JPEG2000Lossless)):
        ds = pydicom.dcmread(fresh(ct, name))
        ds.compress(ts, generate_instance_uid=False)
        out.append(save(ds, folder / f"{name}.dcm"))
    for tool, option, source, name in (
        ("dcmcjpeg", "+e1", ct, "jpeg-lossless-sv1"),
        ("dcmcjpeg", "+el", ct, "jpeg-lossless"),
        ("dcmcjpeg", "+eb", us, "jpeg-baseline"),
        ("dcmcjpeg", "+ee", mr, "jpeg-extended"),
        ("dcmcjpls", "+el", ct, "jpeg-ls-lossless"),
        ("dcmcjpls", "+en", mr, "jpeg-ls-near-lossless"),
    ):
        target = folder / f"{name}.dcm"
        result = subprocess.run([f"/usr/bin/{tool}", option, str(fresh(source, name)), str(target)],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, f"{tool} {option}: {result.stderr}"
        out.append(target)
    return out


@pytest.mark.interop  # DCMTK makes the files (dcmcjpeg, dcmcjpls) and storescu sends them
def test_every_common_transfer_syntax_is_accepted_and_stored_as_received(archive, lab_data, workdir):
    files = _compressed_set(lab_data, workdir / "ts")
    syntaxes = {str(pydicom.dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID) for f in files}
    assert len(syntaxes) == len(files) == 11  # every one different
    config = write_storescu_config(files, workdir / "storescu.cfg")

    async def main():
        async with ArchiveServer(0, AET, archive, host=LOOPBACK) as scp:
            return await storescu(scp.address[1], files, config=config)

    code, out = run(main())
    assert code == 0, out
    assert out.count("Received Store Response (Success)") == len(files), out
    for path in files:
        assert_stored_as_sent(archive, path)
    assert {r.transfer_syntax_uid for r in archive.instances()} == syntaxes
    assert_consistent(archive)


@pytest.mark.interop  # DCMTK storescu sends
def test_four_senders_at_once_lose_nothing_and_duplicate_nothing(archive, lab_data, workdir):
    own = {n: [save(make_dataset(patient_id=f"SENDER{n}", extra_bytes=20_000),
                    workdir / f"own{n}" / f"{k}.dcm") for k in range(15)] for n in range(4)}
    streamed: list[Received] = []

    async def main():
        scp = ArchiveServer(0, AET, archive, host=LOOPBACK, max_associations=4)
        await scp.start()
        consumer = asyncio.create_task(collect(scp, streamed))
        try:
            port = scp.address[1]
            results = await asyncio.gather(*(
                storescu(port, [*lab_files(lab_data), *own[n]], calling=f"SENDER{n}") for n in range(4)))
        finally:
            await scp.stop()
        await asyncio.wait_for(consumer, 10)
        return results, scp.stats

    results, stats = run(main())
    for code, out in results:
        assert code == 0, out
    unique = len(lab_data.instances) + sum(len(v) for v in own.values())
    assert stats.associations == 4 and stats.stored == 4 * len(lab_data.instances) + unique - len(lab_data.instances)
    assert len(streamed) == stats.stored
    # Each lab instance came four times: the first is new, the other three replace it.
    assert Counter(r.replaced for r in streamed) == {False: unique, True: 3 * len(lab_data.instances)}
    with archive._read_lock:
        rows, distinct = archive._reader.execute(
            "SELECT COUNT(*), COUNT(DISTINCT sop_instance_uid) FROM instances").fetchone()
    assert rows == distinct == unique
    assert len(our_files(archive.root)) == unique
    for path in [*lab_files(lab_data), *(p for files in own.values() for p in files)]:
        assert_stored_as_sent(archive, path)
    assert_consistent(archive)


@pytest.mark.interop  # DCMTK storescu sends
def test_a_stalled_index_never_stalls_the_sender(archive, lab_data, monkeypatch):
    release = threading.Event()
    real = Archive._index_batch

    def stalled(self, conn, batch):
        assert release.wait(30), "the test never released the indexer"
        return real(self, conn, batch)

    monkeypatch.setattr(Archive, "_index_batch", stalled)

    async def main():
        async with ArchiveServer(0, AET, archive, host=LOOPBACK) as scp:
            try:
                code, out = await storescu(scp.address[1], lab_files(lab_data))
                indexed_while_sending = archive.counts()["instances"]
            finally:
                release.set()
            return code, out, indexed_while_sending

    code, out, indexed_while_sending = run(main())
    assert code == 0, out
    assert out.count("Received Store Response (Success)") == len(lab_data.instances)
    assert indexed_while_sending == 0  # every response went out before anything was indexed
    assert archive.counts()["instances"] == len(lab_data.instances)  # stop() waited for the index
    assert_consistent(archive)


# ---- refusing


def test_a_port_in_use_is_a_clear_error(archive):
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        scp = ArchiveServer(port, AET, archive, host=LOOPBACK)
        with pytest.raises(ListenerError) as info:
            run(scp.start())
    assert f"Cannot listen on 127.0.0.1:{port}: the port is already in use" in str(info.value)
    assert not scp.is_running


@pytest.mark.interop  # DCMTK storescu sends
def test_a_calling_ae_not_allowed_is_rejected_and_nothing_is_written(archive, lab_data):
    files = lab_files(lab_data)[:5]

    async def main():
        async with ArchiveServer(0, AET, archive, host=LOOPBACK, allowed_calling_aes=["MODALITY1"]) as scp:
            refused = await storescu(scp.address[1], files, calling="INTRUDER")
            counts = archive.counts()
            files_after_refusal = our_files(archive.root)
            accepted = await storescu(scp.address[1], files, calling="MODALITY1")
        return refused, counts, files_after_refusal, accepted, scp.stats

    (code, out), counts, written, (ok_code, ok_out), stats = run(main())
    assert code != 0
    assert "Association Rejected" in out and "Calling AE Title Not Recognized" in out, out
    assert counts["instances"] == 0 and written == []
    assert stats.rejected == 1
    assert ok_code == 0, ok_out
    assert archive.counts()["instances"] == 5


CRAFTED = [
    ("../../../../../../{escape}", "/etc", "1.2.3/../../x"),
    ("{escape}", "..", "."),
    ("9" * 300, "1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.5.6.7.8.9.0" * 8),
    ("1.2.3", "1.2.3.4", "..\\..\\windows"),
]


@pytest.mark.interop  # DCMTK storescu sends
@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom (in pynetdicom and in this test) on the UIDs
def test_uids_crafted_as_paths_stay_inside_the_archive(archive, workdir):
    escape = workdir / "escaped"
    files = []
    for n, uids in enumerate(CRAFTED):
        study, series, sop = (u.format(escape=escape) for u in uids)
        files.append(save(make_dataset(study, series, sop), workdir / "crafted" / f"{n}.dcm"))
    streamed: list[Received] = []

    async def main():
        async with ArchiveServer(0, AET, archive, host=LOOPBACK) as scp:
            consumer = asyncio.create_task(collect(scp, streamed))
            result = await storescu(scp.address[1], files)
        await asyncio.wait_for(consumer, 10)
        return result

    code, out = run(main())
    assert code == 0, out
    assert not escape.exists()
    assert sorted(p.name for p in workdir.iterdir()) == ["archive", "crafted"]
    root = archive.root.resolve()
    for path in files:
        assert_stored_as_sent(archive, path)
    for record in streamed:
        relative = record.path.resolve().relative_to(root)
        assert len(relative.parts) == 3
        assert all(part.startswith("x") and len(part.split(".")[0]) == 41 or part[0].isdigit()
                   for part in relative.parts)
    for found in archive.root.rglob("*"):
        assert found.resolve().is_relative_to(root)
    assert_consistent(archive)


def _pynetdicom_send(port: int, datasets, raw_files=()) -> list[tuple[int, str]]:
    """Send with pynetdicom (exact statuses and error comments): datasets, then raw files as they are."""
    from pynetdicom import AE, _config
    from pynetdicom.sop_class import CTImageStorage

    ae = AE(ae_title="PYSENDER")
    ae.add_requested_context(CTImageStorage, ["1.2.840.10008.1.2.1"])
    assoc = ae.associate(LOOPBACK, port, ae_title=AET)
    assert assoc.is_established
    out = []
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            out.append((int(status.Status), str(status.get("ErrorComment", ""))))
        if raw_files:
            previous = _config.STORE_SEND_CHUNKED_DATASET
            _config.STORE_SEND_CHUNKED_DATASET = True  # send the file's bytes without decoding them
            try:
                for path in raw_files:
                    status = assoc.send_c_store(path)
                    out.append((int(status.Status), str(status.get("ErrorComment", ""))))
            finally:
                _config.STORE_SEND_CHUNKED_DATASET = previous
    finally:
        assoc.release()
    return out


@pytest.mark.interop  # DCMTK storescu sends
def test_a_full_disk_answers_out_of_resources_and_leaves_no_partial_file(archive, lab_data, monkeypatch):
    real = archive_module._write_chunks
    writes = Counter()

    def every_third_write_fills_the_disk(fd, chunks):
        writes["n"] += 1
        if writes["n"] % 3 == 0:
            real(fd, [list(chunks)[0]])  # the file meta reaches the disk, then it is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, chunks)

    monkeypatch.setattr(archive_module, "_write_chunks", every_third_write_fills_the_disk)
    datasets = [make_dataset() for _ in range(6)]

    async def main():
        async with ArchiveServer(0, AET, archive, host=LOOPBACK) as scp:
            statuses = await asyncio.to_thread(_pynetdicom_send, scp.address[1], datasets)
            # storescu: write 7 onwards; -nh: carry on after a refusal
            code, out = await storescu(scp.address[1], lab_files(lab_data), extra=["-nh"])
        return statuses, code, out, scp.stats

    statuses, code, out, stats = run(main())
    assert [s for s, _ in statuses] == [0, 0, 0xA700, 0, 0, 0xA700]
    assert statuses[2][1] == "Out of resources: the archive disk is full"
    refused = [n for n in range(7, 7 + len(lab_data.instances)) if n % 3 == 0]
    assert out.count("Received Store Response (Refused: OutOfResources)") == len(refused), out
    assert out.count("Received Store Response (Success)") == len(lab_data.instances) - len(refused)
    assert stats.failed == 2 + len(refused)
    assert archive.counts()["instances"] == 4 + len(lab_data.instances) - len(refused)
    for n, instance in enumerate(lab_data.instances, start=7):
        if n % 3:
            assert_stored_as_sent(archive, instance.path)
        else:
            assert not archive.has_instance(instance.sop_instance_uid)
    assert temp_files(archive.root) == []
    assert_consistent(archive)


def test_a_malformed_data_set_is_refused_with_cannot_understand(archive, workdir):
    good = save(make_dataset(), workdir / "good.dcm")
    data = good.read_bytes()
    _, offset, _ = archive_module.split_part10(data)
    broken = workdir / "broken.dcm"
    # Valid file meta, then a data set whose first element claims more bytes than there are.
    broken.write_bytes(data[:offset] + b"\x08\x00\x16\x00UI\x40\x00" + b"1.2" + b"\x10\x00\x10\x00PN\xff\xff")
    missing_uids = make_dataset()
    del missing_uids.SeriesInstanceUID

    async def main():
        async with ArchiveServer(0, AET, archive, host=LOOPBACK) as scp:
            return await asyncio.to_thread(_pynetdicom_send, scp.address[1], [missing_uids], [broken, good])

    statuses = run(main())
    assert statuses[0][0] == 0xC000 and "no Series Instance UID" in statuses[0][1]
    assert statuses[1][0] == 0xC000 and statuses[1][1].startswith("Cannot understand")
    assert statuses[2][0] == 0x0000
    assert archive.counts()["instances"] == 1
    assert_consistent(archive)


# ---- the rest of the contract


@pytest.mark.interop  # DCMTK storescu sends
def test_tls_with_client_certificates(archive, lab_data, certs):
    tls = TLSConfiguration(certificate=certs.server_cert, key=certs.server_key, ca_certificate=certs.ca_cert)
    files = lab_files(lab_data)[:3]

    async def main():
        async with ArchiveServer(0, AET, archive, tls=tls, host=LOOPBACK) as scp:
            port = scp.address[1]
            secure = await storescu(port, files, extra=["+tls", str(certs.client_key), str(certs.client_cert),
                                                        "+cf", str(certs.ca_cert)])
            plain = await storescu(port, lab_files(lab_data)[3:5])
            stranger = await storescu(port, lab_files(lab_data)[5:7], extra=[
                "+tls", str(certs.other_client_key), str(certs.other_client_cert), "+cf", str(certs.ca_cert)])
        return secure, plain, stranger

    (code, out), (plain_code, _), (stranger_code, _) = run(main())
    assert code == 0, out
    assert plain_code != 0 and stranger_code != 0
    assert sorted(r.sop_instance_uid for r in archive.instances()) == sorted(
        pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files)
    assert_consistent(archive)


def test_echo_and_the_association_limit(archive):
    async def main():
        async with ArchiveServer(0, AET, archive, host=LOOPBACK, max_associations=1,
                              timeouts=Timeouts.uniform(10)) as scp:
            port = scp.address[1]
            first = DICOMClient(LOOPBACK, port, called_ae=AET)
            await first.associate()
            try:
                rtt = await VerificationService(first).verify()
                second = DICOMClient(LOOPBACK, port, called_ae=AET, retry_policy=NO_RETRY)
                try:
                    await second.associate()
                except AssociationRejected as exc:
                    refused = exc
                else:
                    await second.release()
                    refused = None
            finally:
                await first.release()
            return rtt, refused

    rtt, refused = run(main())
    assert rtt > 0
    assert refused is not None and refused.transient and "local limit exceeded" in str(refused)


def test_every_storage_sop_class_is_accepted(archive):
    """Not only images: whatever storage SOP class a modality sends (here a PDF and an SR)."""
    from pynetdicom import AE, AllStoragePresentationContexts, StoragePresentationContexts
    from pynetdicom.sop_class import BasicTextSRStorage, EncapsulatedPDFStorage

    from pacsbrowser.core.dicom.server import STORAGE_TRANSFER_SYNTAXES, storage_contexts

    offered = {str(cx.abstract_syntax): set(map(str, cx.transfer_syntax)) for cx in storage_contexts()}
    assert all(offered[str(cx.abstract_syntax)] == set(map(str, STORAGE_TRANSFER_SYNTAXES))
               for cx in (*AllStoragePresentationContexts, *StoragePresentationContexts))
    documents = []
    for sop_class in (EncapsulatedPDFStorage, BasicTextSRStorage):
        ds = make_dataset()
        del ds.PixelData, ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit
        del ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PixelRepresentation
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.Modality = "DOC" if sop_class == EncapsulatedPDFStorage else "SR"
        documents.append(ds)

    def send(port):
        ae = AE(ae_title="PYSENDER")
        ae.add_requested_context(EncapsulatedPDFStorage)
        ae.add_requested_context(BasicTextSRStorage)
        assoc = ae.associate(LOOPBACK, port, ae_title=AET)
        assert assoc.is_established
        try:
            return [int(assoc.send_c_store(ds).Status) for ds in documents]
        finally:
            assoc.release()

    async def main():
        async with ArchiveServer(0, AET, archive, host=LOOPBACK) as scp:
            return await asyncio.to_thread(send, scp.address[1])

    assert run(main()) == [0, 0]
    assert {r.sop_class_uid for r in archive.instances()} == {EncapsulatedPDFStorage, BasicTextSRStorage}
    assert_consistent(archive)
