"""Images on sim: import from HTTP(S) and files with sha256 / sha512 / signed SHA256SUMS, VMs from images,
verify, and nothing left behind on any error."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import hvkit
from hvkit.errors import AlreadyExists, InvalidSpec, InvalidState, NotFound
from hvkit.hypervisor import Hypervisor
from hvkit.images import ImageChecksumMismatch, ImageError, Images, SignatureError
from hvkit.migration._verify import checksum_bytes

from .conftest import MIB, Served, Signer, disk_content, ova_of, qcow2_of, sha256


@pytest.fixture
def hv(tmp_path: Path) -> Iterator[Hypervisor]:
    with hvkit.connect(f"sim://img-{uuid.uuid4().hex[:8]}", state_dir=str(tmp_path / "sim")) as conn:
        yield conn


@pytest.fixture
def images(hv: Hypervisor, catalog: Path, monkeypatch: pytest.MonkeyPatch) -> Images:
    monkeypatch.setenv("HVKIT_IMAGE_CATALOG", str(catalog))
    made: Images = hv.images  # what hv.vms.create reads for DiskSpec(image=...)
    assert made.catalog.path == catalog
    return made


def _state(hv: Hypervisor, images: Images) -> tuple[list[str], list[str], list[str]]:
    return ([v.id for v in hv.volumes.list()], [i.name for i in images.list()], [vm.id for vm in hv.vms.list()])


def _content_of(hv: Hypervisor, volume: str, tmp: Path) -> bytes:
    out = tmp / f"read-{uuid.uuid4().hex[:6]}.raw"
    hv.volumes.download(volume, out)
    return out.read_bytes()


def test_import_http_sha256_then_vm_from_image(hv: Hypervisor, images: Images, served: Served, tmp_path: Path) -> None:
    content = disk_content(8 * MIB, 1)
    data = qcow2_of(content, tmp_path)
    url = served.put("deb-1.qcow2", data)
    image = images.import_("deb-1", url, sha256=sha256(data), workdir=str(tmp_path / "work"))
    assert image.digest == f"sha256:{sha256(data)}"
    assert image.content_checksum == checksum_bytes(content)
    assert image.size_bytes == len(content) and image.source == url and image.signed_by is None
    assert [i.name for i in images.list()] == ["deb-1"]
    assert _content_of(hv, image.volume, tmp_path) == content
    assert list((tmp_path / "work").iterdir()) == []  # the download went to a temporary folder, now gone

    verified = images.verify("deb-1")
    assert verified.checksum == image.content_checksum

    vm = hv.vms.create(
        hvkit.VMSpec(name="from-image", disks=[hvkit.DiskSpec(image="deb-1"), hvkit.DiskSpec(size_gib=0.01)])
    )
    assert len(vm.disks) == 2
    copy = vm.disks[0].volume
    assert copy is not None and copy != image.volume  # a full copy, not the image itself
    assert _content_of(hv, copy, tmp_path) == content
    hv.vms.delete(vm)
    assert hv.volumes.get(image.volume).id == image.volume  # the image outlives the VM
    images.delete("deb-1")
    assert images.list() == []
    with pytest.raises(NotFound):
        hv.volumes.get(image.volume)


def test_import_file_sha512_and_https(hv: Hypervisor, images: Images, served: Served, tmp_path: Path) -> None:
    content = disk_content(4 * MIB, 2)
    path = tmp_path / "plain.raw"
    path.write_bytes(content)
    image = images.import_("plain", path, sha512=hashlib.sha512(content).hexdigest())
    assert image.digest.startswith("sha512:") and image.source == str(path.resolve())
    data = qcow2_of(content, tmp_path)
    url = served.put("secure.qcow2", data).replace(served.url, served.https)
    secure = images.import_("secure", url, sha256=sha256(data), ca_file=served.ca_file)
    assert secure.content_checksum == image.content_checksum  # same content, another format: one checksum
    with pytest.raises(hvkit.errors.ConnectionError, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
        images.import_("untrusted", url, sha256=sha256(data))  # TLS verification is on by default


def test_signed_sums(
    hv: Hypervisor, images: Images, served: Served, signers: tuple[Signer, Signer], tmp_path: Path
) -> None:
    release, _ = signers
    content = disk_content(4 * MIB, 3)
    data = qcow2_of(content, tmp_path)
    url = served.put("debian-12-generic-amd64.qcow2", data)
    sums = served.root / "SHA256SUMS"
    sums.write_text(f"{'0' * 64}  other.qcow2\n{sha256(data)}  debian-12-generic-amd64.qcow2\n")
    release.sign(sums)
    image = images.import_("debian-12", url, sums=f"{served.url}/SHA256SUMS",
                           signature=f"{served.url}/SHA256SUMS.sign", keyring=release.keyring)  # fmt: skip
    assert image.signed_by == release.fingerprint
    assert image.digest == f"sha256:{sha256(data)}"


def test_signature_bad_or_unknown_key_leaves_nothing(
    hv: Hypervisor, images: Images, served: Served, signers: tuple[Signer, Signer], tmp_path: Path
) -> None:
    release, stranger = signers
    data = qcow2_of(disk_content(2 * MIB, 4), tmp_path)
    url = served.put("sig-test.qcow2", data)
    sums = served.root / "SIGSUMS" / "SHA256SUMS"
    sums.parent.mkdir(exist_ok=True)
    sums.write_text(f"{sha256(data)}  sig-test.qcow2\n")
    stranger.sign(sums)
    before = _state(hv, images)
    work = tmp_path / "work"
    work.mkdir()
    common = {"sums": f"{served.url}/SIGSUMS/SHA256SUMS", "signature": f"{served.url}/SIGSUMS/SHA256SUMS.sign",
              "keyring": release.keyring, "workdir": str(work)}  # fmt: skip
    with pytest.raises(SignatureError, match="keyring does not hold"):
        images.import_("unknown-key", url, **common)  # type: ignore[arg-type]
    release.sign(sums)
    sums.write_text(f"{'1' * 64}  sig-test.qcow2\n")  # altered after signing
    with pytest.raises(SignatureError, match="BAD"):
        images.import_("bad-sig", url, **common)  # type: ignore[arg-type]
    assert _state(hv, images) == before
    assert list(work.iterdir()) == []


def test_mismatch_leaves_nothing(hv: Hypervisor, images: Images, served: Served, tmp_path: Path) -> None:
    data = qcow2_of(disk_content(2 * MIB, 5), tmp_path)
    url = served.put("tampered.qcow2", data)
    before = _state(hv, images)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(ImageChecksumMismatch, match="checksum mismatch") as err:
        images.import_("tampered", url, sha256="ab" * 32, workdir=str(work))
    assert err.value.actual == f"sha256:{sha256(data)}"
    assert _state(hv, images) == before and list(work.iterdir()) == []


def test_failure_after_the_volume_was_made_removes_it(
    hv: Hypervisor, images: Images, served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = qcow2_of(disk_content(2 * MIB, 6), tmp_path)
    url = served.put("late-fail.qcow2", data)
    before = _state(hv, images)

    def refuse(image: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(images.catalog, "add", refuse)
    with pytest.raises(OSError, match="disk full"):
        images.import_("late-fail", url, sha256=sha256(data))
    assert _state(hv, images) == before


def test_ova(hv: Hypervisor, images: Images, served: Served, tmp_path: Path) -> None:
    content = disk_content(4 * MIB, 7)
    data = ova_of(content, tmp_path)
    url = served.put("appliance.ova", data)
    image = images.import_("appliance", url, sha256=sha256(data))
    assert image.content_checksum == checksum_bytes(content)
    assert _content_of(hv, image.volume, tmp_path) == content


def test_verify_finds_damage(hv: Hypervisor, images: Images, tmp_path: Path) -> None:
    content = disk_content(2 * MIB, 8)
    path = tmp_path / "d.raw"
    path.write_bytes(content)
    image = images.import_("damaged", path, sha256=sha256(content))
    changed = bytearray(content)
    changed[MIB] ^= 0xFF
    (tmp_path / "bad.raw").write_bytes(bytes(changed))
    hv.volumes.upload(image.volume, tmp_path / "bad.raw")
    with pytest.raises(ImageChecksumMismatch, match="damaged"):
        images.verify("damaged")


def test_bad_input_is_refused_before_anything(hv: Hypervisor, images: Images, served: Served, tmp_path: Path) -> None:
    content = disk_content(MIB, 9)
    path = tmp_path / "x.raw"
    path.write_bytes(content)
    before = _state(hv, images)
    with pytest.raises(InvalidSpec, match="one of sha256"):
        images.import_("x", path)
    with pytest.raises(InvalidSpec, match="one of sha256"):
        images.import_("x", path, sha256=sha256(content), sha512="a" * 128)
    with pytest.raises(InvalidSpec, match="64 hex"):
        images.import_("x", path, sha256="xyz")
    with pytest.raises(InvalidSpec, match="signature= and a keyring="):
        images.import_("x", path, sums=path)
    with pytest.raises(InvalidSpec, match="not a file"):
        images.import_("x", tmp_path / "missing.raw", sha256=sha256(content))
    with pytest.raises(InvalidSpec, match="not ftp"):
        images.import_("x", "ftp://127.0.0.1/x", sha256=sha256(content))
    with pytest.raises(InvalidSpec):
        images.import_("bad name!", path, sha256=sha256(content))
    with pytest.raises(InvalidSpec, match="one of size_gib, volume or image"):
        hvkit.DiskSpec(image="x", size_gib=1)
    with pytest.raises(ImageError, match="HTTP 404"):
        images.import_("x", f"{served.url}/nothing-here.qcow2", sha256=sha256(content))
    images.import_("x", path, sha256=sha256(content))
    with pytest.raises(AlreadyExists):
        images.import_("x", path, sha256=sha256(content))
    assert len(_state(hv, images)[0]) == len(before[0]) + 1


def test_backing_file_images_are_refused(hv: Hypervisor, images: Images, tmp_path: Path) -> None:
    import subprocess

    secret = tmp_path / "secret.raw"
    secret.write_bytes(b"secret" * 1000)
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-f", "qcow2", "-F", "raw", "-b", str(secret), str(overlay)], check=True,
                   capture_output=True)  # fmt: skip
    with pytest.raises(ImageError, match="backing"):
        images.import_("sneaky", overlay, sha256=sha256(overlay.read_bytes()))


def test_vm_from_unknown_image_makes_nothing(hv: Hypervisor, images: Images) -> None:
    before = _state(hv, images)
    with pytest.raises(NotFound, match="no image"):
        hv.vms.create(hvkit.VMSpec(name="orphan", disks=[hvkit.DiskSpec(image="nope")]))
    assert _state(hv, images) == before


def test_vm_from_image_without_waiting(hv: Hypervisor, images: Images, tmp_path: Path) -> None:
    content = disk_content(MIB, 10)
    path = tmp_path / "w.raw"
    path.write_bytes(content)
    images.import_("waitless", path, sha256=sha256(content))
    task = hv.vms.create(hvkit.VMSpec(name="later", disks=[hvkit.DiskSpec(image="waitless")]), wait=False)
    assert isinstance(task, hvkit.Task)
    vm = task.wait(60)
    assert vm.name == "later" and _content_of(hv, str(vm.disks[0].volume), tmp_path) == content


# -- linked disks ---------------------------------------------------------------------------------------------
def _write_into(path: str, offset: int, pattern: int) -> None:
    """Write 64 KiB of ``pattern`` at ``offset`` into a qcow2 file through QEMU's block layer, as a guest would."""
    import subprocess

    subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P {pattern} {offset} 64k", path], check=True,
                   capture_output=True)  # fmt: skip


def test_linked_vm_reads_the_image_and_never_writes_it(hv: Hypervisor, images: Images, tmp_path: Path) -> None:
    content = disk_content(4 * MIB, 11)
    path = tmp_path / "base.raw"
    path.write_bytes(content)
    before = _state(hv, images)
    image = images.import_("base", path, sha256=sha256(content))
    spec = hvkit.VMSpec(
        name="linked-vm", disks=[hvkit.DiskSpec(image="base", linked=True), hvkit.DiskSpec(image="base")]
    )
    vm = hv.vms.create(spec)
    linked, full = (hv.volumes.get(str(d.volume)) for d in vm.disks)
    assert linked.backing == image.volume and linked.format is hvkit.DiskFormat.QCOW2  # copy-on-write over it
    assert full.backing is None and full.id != image.volume  # the other disk is a full copy
    assert images.get("base").linked == (linked.id,)
    assert _content_of(hv, linked.id, tmp_path) == content

    assert linked.path is not None
    _write_into(linked.path, 0, 0xAB)  # the VM writes: into its overlay only
    written = _content_of(hv, linked.id, tmp_path)
    assert written[: 64 * 1024] == b"\xab" * 64 * 1024 and written[64 * 1024 :] == content[64 * 1024 :]
    assert _content_of(hv, image.volume, tmp_path) == content
    assert images.verify("base").checksum == image.content_checksum

    with pytest.raises(InvalidState, match=r"'base' is the base of linked disks of VMs linked-vm"):
        images.delete("base")
    images.catalog.unlink("base", image.volume, [linked.id])  # the hypervisor still says who uses it
    with pytest.raises(InvalidState, match="linked-vm"):
        images.delete("base")
    assert [i.name for i in images.list()] == ["base"] and hv.volumes.get(image.volume).id == image.volume

    hv.vms.delete(vm)
    assert hv.volumes.get(image.volume).id == image.volume  # the VM delete took its overlay, not the image
    images.delete("base")
    assert _state(hv, images) == before


def test_linked_record_of_a_deleted_vm_is_pruned(hv: Hypervisor, images: Images, tmp_path: Path) -> None:
    content = disk_content(MIB, 12)
    path = tmp_path / "p.raw"
    path.write_bytes(content)
    images.import_("pruned", path, sha256=sha256(content))
    vm = hv.vms.create(hvkit.VMSpec(name="gone", disks=[hvkit.DiskSpec(image="pruned", linked=True, name="root")]))
    overlay = str(vm.disks[0].volume)
    hv.vms.delete(vm)
    assert images.get("pruned").linked == (overlay,)  # recorded until the image is deleted
    images.delete("pruned")
    assert images.list() == []


def test_linked_failure_midway_removes_only_what_the_call_made(hv: Hypervisor, images: Images, tmp_path: Path) -> None:
    content = disk_content(MIB, 13)
    path = tmp_path / "f.raw"
    path.write_bytes(content)
    image = images.import_("midway", path, sha256=sha256(content))
    other = hv.vms.create(hvkit.VMSpec(name="keeper", disks=[hvkit.DiskSpec(image="midway", linked=True)]))
    before = _state(hv, images)
    hv.backend.session.world.faults.fail("create_vm")  # type: ignore[attr-defined]
    disks = [hvkit.DiskSpec(image="midway", linked=True), hvkit.DiskSpec(size_gib=0.01)]
    spec = hvkit.VMSpec(name="fails", disks=disks)
    with pytest.raises(hvkit.errors.BackendError, match="injected"):
        hv.vms.create(spec)
    assert _state(hv, images) == before
    assert images.get("midway").linked == (str(other.disks[0].volume),)  # the keeper's record stays
    hv.backend.session.world.faults.fail("create_linked_volume")  # type: ignore[attr-defined]
    with pytest.raises(hvkit.errors.BackendError, match="injected"):
        hv.vms.create(spec)
    assert _state(hv, images) == before
    assert hv.volumes.get(image.volume).id == image.volume


def test_linked_needs_the_capability_and_checks_its_spec(
    hv: Hypervisor, images: Images, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InvalidSpec, match="give image="):
        hvkit.DiskSpec(size_gib=1, linked=True)
    with pytest.raises(InvalidSpec, match="leave format unset"):
        hvkit.DiskSpec(image="x", linked=True, format="raw")
    with pytest.raises(InvalidSpec, match="True or False"):
        hvkit.DiskSpec(image="x", linked="yes")  # type: ignore[arg-type]
    content = disk_content(MIB, 14)
    path = tmp_path / "c.raw"
    path.write_bytes(content)
    images.import_("nolink", path, sha256=sha256(content))
    before = _state(hv, images)
    monkeypatch.setattr(hv.backend, "capabilities", hv.backend.capabilities - {hvkit.Capability.VOLUME_LINKED})
    spec = hvkit.VMSpec(name="n", disks=[hvkit.DiskSpec(size_gib=0.01), hvkit.DiskSpec(image="nolink", linked=True)])
    with pytest.raises(hvkit.errors.Unsupported, match=r"images.linked .*linked=False\) makes a full copy"):
        hv.vms.create(spec)
    assert _state(hv, images) == before


def test_linked_name_clash_midway_removes_only_this_calls_volumes(
    hv: Hypervisor, images: Images, tmp_path: Path
) -> None:
    content = disk_content(MIB, 15)
    path = tmp_path / "n.raw"
    path.write_bytes(content)
    image = images.import_("clash", path, sha256=sha256(content))
    with pytest.raises(NotFound, match="nope"):  # a pool that does not exist: refused before anything is made
        hv.vms.create(hvkit.VMSpec(name="c", disks=[hvkit.DiskSpec(image="clash", linked=True, pool="nope")]))
    theirs = hv.volumes.create(image.pool, "c-disk1.qcow2", 0.01, format="qcow2")  # the name disk 1 would get
    before = _state(hv, images)
    disks = [hvkit.DiskSpec(image="clash", linked=True), hvkit.DiskSpec(image="clash", linked=True)]
    with pytest.raises(AlreadyExists):
        hv.vms.create(hvkit.VMSpec(name="c", disks=disks))  # disk 0 is made, disk 1 clashes
    assert _state(hv, images) == before and images.get("clash").linked == ()
    assert hv.volumes.get(theirs.id).id == theirs.id  # removed by id: the volume of the same name stays


def test_no_linked_disk_is_made_over_an_image_being_deleted(hv: Hypervisor, images: Images, tmp_path: Path) -> None:
    content = disk_content(MIB, 16)
    path = tmp_path / "d.raw"
    path.write_bytes(content)
    image = images.import_("going", path, sha256=sha256(content))
    first = hv.vms.create(hvkit.VMSpec(name="first", disks=[hvkit.DiskSpec(image="going", linked=True)]))
    with pytest.raises(InvalidState, match="linked disks of VMs first"):
        images.delete("going")  # refused: the mark is taken off again
    second = hv.vms.create(hvkit.VMSpec(name="second", disks=[hvkit.DiskSpec(image="going", linked=True)]))
    before = _state(hv, images)
    images.catalog.deleting("going", image.volume, True)  # a delete in another process got this far
    with pytest.raises(InvalidState, match="being deleted"):
        hv.vms.create(hvkit.VMSpec(name="third", disks=[hvkit.DiskSpec(image="going", linked=True)]))
    assert _state(hv, images) == before
    assert set(images.get("going").linked) == {str(first.disks[0].volume), str(second.disks[0].volume)}
