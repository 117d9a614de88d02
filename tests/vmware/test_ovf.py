"""OVF and OVA import through an HttpNfcLease, on vcsim (which accepts the disk stream and discards it)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from hvkit import PowerState
from hvkit.errors import AlreadyExists, InvalidSpec, NotFound
from hvkit.hypervisor import Hypervisor

OVF = """<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
  xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
  xmlns:vmw="http://www.vmware.com/schema/ovf">
  <References><File ovf:href="{disk}" ovf:id="file1" ovf:size="{size}"/></References>
  <DiskSection><Info>disks</Info>
    <Disk ovf:capacity="16" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk1" ovf:fileRef="file1"
      ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection><Info>networks</Info>
    <Network ovf:name="VM Network"><Description>net</Description></Network>
  </NetworkSection>
  <VirtualSystem ovf:id="appliance">
    <Info>a small appliance</Info>
    <OperatingSystemSection ovf:id="101" vmw:osType="otherLinux64Guest"><Info>os</Info></OperatingSystemSection>
    <VirtualHardwareSection><Info>hardware</Info>
      <System><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType></System>
      <Item><rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits><rasd:ElementName>2 CPUs</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ElementName>256 MB</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>256</rasd:VirtualQuantity></Item>
      <Item><rasd:Address>0</rasd:Address><rasd:ElementName>SCSI 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:ElementName>disk</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"""


def _write(tmp: Path, disk: str = "disk1.vmdk") -> Path:
    data = b"KDMV" + bytes(64 * 1024)  # stands in for a streamOptimized VMDK; vcsim discards it
    (tmp / "disk1.vmdk").write_bytes(data)
    ovf = tmp / "appliance.ovf"
    ovf.write_text(OVF.format(disk=disk, size=len(data)))
    return ovf


def test_import_ovf_and_ova(hv: Hypervisor, tmp_path: Path, cleanup: list[tuple[Hypervisor, str]]) -> None:
    ovf = _write(tmp_path)
    cleanup.append((hv, "ovf1"))
    vm_id = hv.backend.import_ovf(str(ovf), "ovf1")  # type: ignore[attr-defined]
    vm = hv.vms.get(vm_id)
    assert (vm.name, vm.cpus, vm.memory_mib, vm.power_state) == ("ovf1", 2, 256, PowerState.STOPPED)
    ova = tmp_path / "appliance.ova"
    with tarfile.open(ova, "w") as tar:  # the descriptor comes first in an OVA
        tar.add(ovf, arcname="appliance.ovf")
        tar.add(tmp_path / "disk1.vmdk", arcname="disk1.vmdk")
    cleanup.append((hv, "ova1"))
    net = hv.networks.list()[0].name
    vm = hv.vms.get(hv.backend.import_ovf(str(ova), "ova1", network=net))  # type: ignore[attr-defined]
    assert vm.name == "ova1"
    with pytest.raises(AlreadyExists):
        hv.backend.import_ovf(str(ova), "ova1")  # type: ignore[attr-defined]


def test_failed_import_leaves_nothing(hv: Hypervisor, tmp_path: Path) -> None:
    ovf = _write(tmp_path, disk="missing.vmdk")
    with pytest.raises(InvalidSpec, match=r"missing\.vmdk"):
        hv.backend.import_ovf(str(ovf), "ovf-broken")  # type: ignore[attr-defined]
    with pytest.raises(NotFound):
        hv.vms.get("ovf-broken")
    with pytest.raises(InvalidSpec):
        hv.backend.import_ovf(str(tmp_path / "nope.ovf"), "x")  # type: ignore[attr-defined]
