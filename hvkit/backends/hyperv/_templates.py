# ruff: noqa: E501  (PowerShell script text: one statement per line reads best)
"""The fixed PowerShell script templates: one per operation, an id and a version each.

A template never contains a user value: it reads everything from ``$P``, the JSON object sent after
it on stdin (see ``_session.BOOTSTRAP``), and prints one compact JSON document. Line 1 is the header
``# hvkit-template: <id> v<version>`` a host model (or a log reader) identifies the script by.
"""

from __future__ import annotations

import attrs

__all__ = ["TEMPLATES", "Template", "template"]

_PRELUDE = r"""
function hvkFail($Category, $Id, $Message, $Target) {
    Write-Error -Message $Message -Category $Category -ErrorId $Id -TargetObject $Target -ErrorAction Stop
}
function hvkVhd($Path) {
    $v = Get-VHD -Path $Path -ErrorAction SilentlyContinue
    if (-not $v) { return [ordered]@{ Path = $Path; Size = 0; FileSize = 0; VhdFormat = 0; VhdType = 0; ParentPath = $null; Missing = $true } }
    [ordered]@{ Path = $v.Path; Size = $v.Size; FileSize = $v.FileSize; VhdFormat = $v.VhdFormat; VhdType = $v.VhdType; ParentPath = $v.ParentPath }
}
function hvkVM($vm) {
    $secure = $null
    if ($vm.Generation -eq 2) { $secure = (Get-VMFirmware -VM $vm).SecureBoot }
    $parent = $null
    if ($vm.ParentSnapshotId) { $parent = $vm.ParentSnapshotId.ToString() }
    [ordered]@{
        Id = $vm.Id.ToString(); Name = $vm.Name; State = $vm.State; StateName = $vm.State.ToString(); Generation = $vm.Generation
        ProcessorCount = $vm.ProcessorCount; MemoryStartup = $vm.MemoryStartup; Notes = $vm.Notes
        ComputerName = $vm.ComputerName; Path = $vm.Path; ParentSnapshotId = $parent; SecureBoot = $secure
        CreationTime = $vm.CreationTime
        Disks = @(Get-VMHardDiskDrive -VM $vm | ForEach-Object {
            [ordered]@{ ControllerType = $_.ControllerType; ControllerNumber = $_.ControllerNumber; ControllerLocation = $_.ControllerLocation; Vhd = (hvkVhd $_.Path) }
        })
        Dvds = @(Get-VMDvdDrive -VM $vm | ForEach-Object { $_.Path })
        Nics = @(Get-VMNetworkAdapter -VM $vm | ForEach-Object {
            [ordered]@{ Name = $_.Name; MacAddress = $_.MacAddress; SwitchName = $_.SwitchName; IPAddresses = @($_.IPAddresses) }
        })
    }
}
function hvkGetVM($Id) {
    $found = Get-VM -Id $Id -ErrorAction SilentlyContinue
    if (-not $found) { hvkFail 'ObjectNotFound' 'hvkit.VMNotFound' 'Hyper-V was unable to find a virtual machine with the given ID.' $Id }
    $found
}
"""


@attrs.frozen
class Template:
    id: str
    version: int
    body: str
    depth: int = 8

    @property
    def text(self) -> str:
        header = f"# hvkit-template: {self.id} v{self.version}\nparam($P)\n"
        return header + _PRELUDE + self.body.strip("\n") + f"\n$out | ConvertTo-Json -Compress -Depth {self.depth}\n"


_INVENTORY = r"""
$vmHost = Get-VMHost
$pools = @($vmHost.VirtualHardDiskPath) + @($P.Pools)
$out = [ordered]@{
    Host = [ordered]@{
        ComputerName = $vmHost.ComputerName; FullyQualifiedDomainName = $vmHost.FullyQualifiedDomainName
        LogicalProcessorCount = $vmHost.LogicalProcessorCount; MemoryCapacity = $vmHost.MemoryCapacity
        VirtualHardDiskPath = $vmHost.VirtualHardDiskPath; VirtualMachinePath = $vmHost.VirtualMachinePath
        VirtualMachineMigrationEnabled = $vmHost.VirtualMachineMigrationEnabled
        VirtualMachineMigrationAuthenticationType = $vmHost.VirtualMachineMigrationAuthenticationType
    }
    Switches = @(Get-VMSwitch | ForEach-Object { [ordered]@{ Id = $_.Id.ToString(); Name = $_.Name; SwitchType = $_.SwitchType } })
    Pools = @($pools | Where-Object { $_ } | Select-Object -Unique | ForEach-Object {
        $exists = Test-Path -LiteralPath $_
        $drive = $null
        if ($exists) { $drive = New-Object -TypeName System.IO.DriveInfo -ArgumentList (Split-Path -Path $_ -Qualifier) }
        [ordered]@{ Path = $_; Exists = $exists; TotalSize = $drive.TotalSize; AvailableFreeSpace = $drive.AvailableFreeSpace }
    })
    VMs = @()
}
if ($P.WithVMs) { $out.VMs = @(Get-VM | ForEach-Object { hvkVM $_ }) }
"""

_VM_GET = r"""
$vm = $null
if ($P.Id) { $vm = Get-VM -Id $P.Id -ErrorAction SilentlyContinue }
if (-not $vm -and $P.Name) { $vm = @(Get-VM -Name $P.Name -ErrorAction SilentlyContinue)[0] }
if (-not $vm) { hvkFail 'ObjectNotFound' 'hvkit.VMNotFound' 'Hyper-V was unable to find a virtual machine with the given name or ID.' $P.Name }
$out = hvkVM $vm
"""

_VM_CREATE = r"""
if (Get-VM -Name $P.Name -ErrorAction SilentlyContinue) {
    hvkFail 'ResourceExists' 'hvkit.AlreadyExists' 'A virtual machine with this name already exists.' $P.Name
}
foreach ($n in $P.Nics) { $null = Get-VMSwitch -Name $n.Switch -ErrorAction Stop }
if ($P.SeedIso -and (Test-Path -LiteralPath $P.SeedPath)) { hvkFail 'ResourceExists' 'hvkit.AlreadyExists' 'The seed ISO file exists.' $P.SeedPath }
foreach ($d in $P.Disks) {
    if (-not (Test-Path -LiteralPath $d.Dir)) { hvkFail 'ObjectNotFound' 'hvkit.PoolNotFound' 'The storage path does not exist.' $d.Dir }
    if ($d.SizeBytes -eq 0 -and -not (Test-Path -LiteralPath $d.Path)) { hvkFail 'ObjectNotFound' 'hvkit.VolumeNotFound' 'The virtual hard disk does not exist.' $d.Path }
    if ($d.SizeBytes -gt 0 -and (Test-Path -LiteralPath $d.Path)) { hvkFail 'ResourceExists' 'hvkit.AlreadyExists' 'A virtual hard disk with this name already exists.' $d.Path }
}
$vm = $null
$made = @()
try {
    $vm = New-VM -Name $P.Name -Generation $P.Generation -MemoryStartupBytes $P.MemoryBytes -NoVHD -Path $P.VMPath
    Set-VMProcessor -VM $vm -Count $P.Cpus
    Get-VMNetworkAdapter -VM $vm | Remove-VMNetworkAdapter
    foreach ($d in $P.Disks) {
        if ($d.SizeBytes -gt 0) {
            $null = New-VHD -Path $d.Path -SizeBytes $d.SizeBytes -Dynamic
            $made += $d.Path
        }
        Add-VMHardDiskDrive -VM $vm -ControllerType $d.Controller -Path $d.Path
    }
    foreach ($n in $P.Nics) { Add-VMNetworkAdapter -VM $vm -SwitchName $n.Switch -StaticMacAddress $n.Mac }
    if ($P.Generation -eq 2) {
        if ($P.SecureBoot) { Set-VMFirmware -VM $vm -EnableSecureBoot On -SecureBootTemplate $P.SecureBootTemplate }
        else { Set-VMFirmware -VM $vm -EnableSecureBoot Off }
    }
    Set-VM -VM $vm -Notes $P.Notes -CheckpointType Production -AutomaticStopAction ShutDown
    if ($P.SeedIso) {
        [System.IO.File]::WriteAllBytes($P.SeedPath, [System.Convert]::FromBase64String($P.SeedIso))
        $made += $P.SeedPath
        Add-VMDvdDrive -VM $vm -Path $P.SeedPath
    }
} catch {
    if ($vm) { Remove-VM -VM $vm -Force }
    foreach ($f in $made) { Remove-Item -LiteralPath $f -Force -ErrorAction SilentlyContinue }
    throw
}
$out = hvkVM $vm
"""

_VM_DELETE = r"""
$vm = hvkGetVM $P.Id
# the VM's own files: each disk and checkpoint disk, down its .avhdx chain to the first .vhdx (a linked clone's
# parent belongs to its source); Remove-VM itself deletes none of them
$paths = @(Get-VMHardDiskDrive -VM $vm | ForEach-Object { $_.Path }) + @(Get-VMSnapshot -VM $vm | Get-VMHardDiskDrive | ForEach-Object { $_.Path })
$files = @()
foreach ($path in $paths) {
    $next = $path
    while ($next) {
        if ($files -notcontains $next) { $files += $next }
        if (-not $next.EndsWith('.avhdx', [System.StringComparison]::OrdinalIgnoreCase)) { break }
        $next = (Get-VHD -Path $next -ErrorAction SilentlyContinue).ParentPath
    }
}
$files += @(Get-VMDvdDrive -VM $vm | ForEach-Object { $_.Path })
Remove-VM -VM $vm -Force
if (-not $P.KeepDisks) {
    foreach ($f in $files) { if ($f) { Remove-Item -LiteralPath $f -Force -ErrorAction SilentlyContinue } }
}
$out = [ordered]@{ Id = $P.Id; Removed = @($files) }
"""

_VM_POWER = r"""
$vm = hvkGetVM $P.Id
switch ($P.Action) {
    'start' { Start-VM -VM $vm }
    'stop' { Stop-VM -VM $vm -Force }
    'turnoff' { Stop-VM -VM $vm -TurnOff -Force }
    'save' { Save-VM -VM $vm }
    'pause' { Suspend-VM -VM $vm }
    'resume' { Resume-VM -VM $vm }
    'reset' { Restart-VM -VM $vm -Force }
    'reboot' { Restart-VM -VM $vm -Type Reboot -Force }
    default { hvkFail 'InvalidArgument' 'hvkit.BadAction' 'Unknown power action.' $P.Action }
}
$out = hvkVM (Get-VM -Id $P.Id)
"""

_VM_RECONFIGURE = r"""
$vm = hvkGetVM $P.Id
if ($P.Cpus) { Set-VMProcessor -VM $vm -Count $P.Cpus }
if ($P.MemoryBytes) { Set-VMMemory -VM $vm -StartupBytes $P.MemoryBytes }
$out = hvkVM (Get-VM -Id $P.Id)
"""

_SNAPSHOT_LIST = r"""
$out = [ordered]@{ VMs = @($P.Ids | ForEach-Object {
    $vm = hvkGetVM $_
    $current = $null
    if ($vm.ParentSnapshotId) { $current = $vm.ParentSnapshotId.ToString() }
    [ordered]@{ Id = $vm.Id.ToString(); Current = $current; Snapshots = @(Get-VMSnapshot -VM $vm | ForEach-Object {
        $parent = $null
        if ($_.ParentSnapshotId) { $parent = $_.ParentSnapshotId.ToString() }
        [ordered]@{ Id = $_.Id.ToString(); Name = $_.Name; ParentSnapshotId = $parent; CreationTime = $_.CreationTime; SnapshotType = $_.SnapshotType; State = $_.State; Notes = $_.Notes }
    }) }
}) }
"""

_SNAPSHOT_CREATE = r"""
$vm = hvkGetVM $P.Id
if (Get-VMSnapshot -VM $vm -Name $P.Name -ErrorAction SilentlyContinue) {
    hvkFail 'ResourceExists' 'hvkit.AlreadyExists' 'A checkpoint with this name already exists.' $P.Name
}
if ($P.Memory) { Set-VM -VM $vm -CheckpointType Standard } else { Set-VM -VM $vm -CheckpointType Production }
$snap = Checkpoint-VM -VM $vm -SnapshotName $P.Name -Passthru
$parent = $null
if ($snap.ParentSnapshotId) { $parent = $snap.ParentSnapshotId.ToString() }
$out = [ordered]@{ Id = $snap.Id.ToString(); Name = $snap.Name; ParentSnapshotId = $parent; CreationTime = $snap.CreationTime; SnapshotType = $snap.SnapshotType; State = $snap.State; Notes = $snap.Notes }
"""

_SNAPSHOT_REVERT = r"""
$vm = hvkGetVM $P.Id
$snap = Get-VMSnapshot -Id $P.SnapshotId
Restore-VMSnapshot -VMSnapshot $snap -Confirm:$false
$vm = Get-VM -Id $P.Id
if ($vm.State -eq 'Saved' -and $P.Resume) { Start-VM -VM $vm }
$out = hvkVM (Get-VM -Id $P.Id)
"""

_SNAPSHOT_DELETE = r"""
$vm = hvkGetVM $P.Id
$snap = Get-VMSnapshot -Id $P.SnapshotId
if ($P.Children) { Remove-VMSnapshot -VMSnapshot $snap -IncludeAllChildSnapshots } else { Remove-VMSnapshot -VMSnapshot $snap }
$out = [ordered]@{ Id = $P.SnapshotId }
"""

_VM_CLONE = r"""
$src = hvkGetVM $P.Id
if (Get-VM -Name $P.Name -ErrorAction SilentlyContinue) {
    hvkFail 'ResourceExists' 'hvkit.AlreadyExists' 'A virtual machine with this name already exists.' $P.Name
}
$vm = $null
$made = @()
try {
    if ($P.Linked) {
        $null = New-Item -ItemType Directory -Path $P.VhdDir -Force
        $made += $P.VhdDir
        $vm = New-VM -Name $P.Name -Generation $src.Generation -MemoryStartupBytes $src.MemoryStartup -NoVHD -Path $P.VMPath
        Set-VMProcessor -VM $vm -Count $src.ProcessorCount
        Get-VMNetworkAdapter -VM $vm | Remove-VMNetworkAdapter
        $i = 0
        foreach ($d in @(Get-VMHardDiskDrive -VM $src)) {
            $child = Join-Path -Path $P.VhdDir -ChildPath ('disk{0}.vhdx' -f $i)
            $null = New-VHD -Path $child -ParentPath $d.Path -Differencing
            Add-VMHardDiskDrive -VM $vm -ControllerType $d.ControllerType -Path $child
            $i += 1
        }
        foreach ($n in @(Get-VMNetworkAdapter -VM $src)) { Add-VMNetworkAdapter -VM $vm -SwitchName $n.SwitchName }
    } else {
        $null = New-Item -ItemType Directory -Path $P.ExportDir -Force
        $made += $P.ExportDir
        Export-VM -VM $src -Path $P.ExportDir
        $config = Get-ChildItem -LiteralPath (Join-Path -Path $P.ExportDir -ChildPath $src.Name) -Recurse -Filter '*.vmcx' | Select-Object -First 1
        $vm = Import-VM -Path $config.FullName -Copy -GenerateNewId -VirtualMachinePath $P.VMPath -VhdDestinationPath $P.VhdDir
        $made += $P.VhdDir
        Rename-VM -VM $vm -NewName $P.Name
        Remove-Item -LiteralPath $P.ExportDir -Recurse -Force
    }
    $k = 0
    foreach ($a in @(Get-VMNetworkAdapter -VM $vm)) { Set-VMNetworkAdapter -VMNetworkAdapter $a -StaticMacAddress $P.Macs[$k]; $k += 1 }
} catch {
    if ($vm) { Remove-VM -VM $vm -Force }
    foreach ($f in $made) { Remove-Item -LiteralPath $f -Recurse -Force -ErrorAction SilentlyContinue }
    throw
}
$out = hvkVM (Get-VM -Id $vm.Id)
"""

_VM_MIGRATE = r"""
$vm = hvkGetVM $P.Id
if ($P.DestinationHost) {
    if ($P.DestinationStoragePath) { $moved = Move-VM -VM $vm -DestinationHost $P.DestinationHost -IncludeStorage -DestinationStoragePath $P.DestinationStoragePath -Passthru }
    else { $moved = Move-VM -VM $vm -DestinationHost $P.DestinationHost -IncludeStorage:$false -Passthru }
    $out = [ordered]@{ Id = $moved.Id.ToString(); ComputerName = $moved.ComputerName; State = $moved.State; StateName = $moved.State.ToString() }
} else {
    if (-not (Test-Path -LiteralPath $P.DestinationStoragePath)) { hvkFail 'ObjectNotFound' 'hvkit.PoolNotFound' 'The storage path does not exist.' $P.DestinationStoragePath }
    Move-VMStorage -VM $vm -DestinationStoragePath $P.DestinationStoragePath
    $out = hvkVM (Get-VM -Id $P.Id)
}
"""

_VM_METRICS = r"""
$out = [ordered]@{ VMs = @($P.Ids | ForEach-Object {
    $vm = hvkGetVM $_
    if (-not $vm.ResourceMeteringEnabled) { Enable-VMResourceMetering -VM $vm }
    $m = Measure-VM -VM $vm
    $rx = 0; $tx = 0
    foreach ($t in @($m.NetworkMeteredTrafficReport)) { if ($t.Direction -eq 'Inbound') { $rx += $t.TotalTraffic } else { $tx += $t.TotalTraffic } }
    [ordered]@{ Id = $vm.Id.ToString(); CPUUsage = $vm.CPUUsage; MemoryAssigned = $vm.MemoryAssigned; Uptime = $vm.Uptime.TotalSeconds
        AvgCPU = $m.AvgCPU; AvgRAM = $m.AvgRAM; DiskRead = $m.AggregatedDiskDataRead; DiskWritten = $m.AggregatedDiskDataWritten; NetIn = $rx; NetOut = $tx }
}) }
"""

_VOLUME_LIST = r"""
# the VHD files in each folder: disks, and the differencing disks checkpoints leave beside their parents (.avhdx,
# .avhd before 2012 R2); for each file the VM whose drive uses it now and every VM whose disks or checkpoints read it
$attached = @{}
$readBy = @{}
foreach ($vm in @(Get-VM)) {
    $id = $vm.Id.ToString()
    $starts = @(Get-VMHardDiskDrive -VM $vm | ForEach-Object { $attached[$_.Path] = $id; $_.Path }) + @(Get-VMSnapshot -VM $vm | Get-VMHardDiskDrive | ForEach-Object { $_.Path })
    foreach ($path in $starts) {
        $next = $path
        while ($next -and $readBy[$next] -notcontains $id) {
            if (-not $readBy.ContainsKey($next)) { $readBy[$next] = @() }
            $readBy[$next] += $id
            $next = (Get-VHD -Path $next -ErrorAction SilentlyContinue).ParentPath
        }
    }
}
$out = [ordered]@{ Volumes = @($P.Dirs | ForEach-Object {
    $dir = $_
    if (Test-Path -LiteralPath $dir) {
        Get-ChildItem -LiteralPath $dir -File | Where-Object { $_.Extension -in @('.vhdx', '.vhd', '.avhdx', '.avhd') } | ForEach-Object {
            $v = hvkVhd $_.FullName
            $v.Dir = $dir
            $v.AttachedTo = $attached[$_.FullName]
            $v.ReadBy = @()
            if ($readBy.ContainsKey($_.FullName)) { $v.ReadBy = @($readBy[$_.FullName]) }
            $v
        }
    }
}) }
"""

_VOLUME_CREATE = r"""
if (-not (Test-Path -LiteralPath $P.Dir)) { hvkFail 'ObjectNotFound' 'hvkit.PoolNotFound' 'The storage path does not exist.' $P.Dir }
if (Test-Path -LiteralPath $P.Path) { hvkFail 'ResourceExists' 'hvkit.AlreadyExists' 'A virtual hard disk with this name already exists.' $P.Path }
$null = New-VHD -Path $P.Path -SizeBytes $P.SizeBytes -Dynamic
$out = hvkVhd $P.Path
"""

_VOLUME_DELETE = r"""
if (-not (Test-Path -LiteralPath $P.Path)) { hvkFail 'ObjectNotFound' 'hvkit.VolumeNotFound' 'The virtual hard disk does not exist.' $P.Path }
$starts = @(Get-VM | Get-VMHardDiskDrive | ForEach-Object { $_.Path }) + @(Get-VM | Get-VMSnapshot | Get-VMHardDiskDrive | ForEach-Object { $_.Path })
foreach ($path in $starts) {
    $next = $path
    while ($next) {  # a disk or checkpoint disk itself, or a parent of it (checkpoints, linked clones)
        if ($next -eq $P.Path) { hvkFail 'ResourceBusy' 'hvkit.InUse' 'The virtual hard disk is in use by a virtual machine or one of its checkpoints.' $P.Path }
        $next = (Get-VHD -Path $next -ErrorAction SilentlyContinue).ParentPath
    }
}
Remove-Item -LiteralPath $P.Path -Force
$out = [ordered]@{ Path = $P.Path }
"""

_VOLUME_EXPORT = r"""
if (Test-Path -LiteralPath $P.Destination) { hvkFail 'ResourceExists' 'hvkit.AlreadyExists' 'The destination file exists.' $P.Destination }
Convert-VHD -Path $P.Path -DestinationPath $P.Destination -VHDType Dynamic
$out = hvkVhd $P.Destination
"""

_SNAPSHOT_EXPORT = r"""
# a disk as a checkpoint holds it: the checkpoint's file for the asked volume (that file itself, or the one in the
# slot where the VM's drive now uses the volume); a differencing file merged into a new VHDX beside it (Convert-VHD)
$vm = hvkGetVM $P.Id
$snap = Get-VMSnapshot -VM $vm | Where-Object { $_.Id.ToString() -eq $P.SnapshotId }
if (-not $snap) { hvkFail 'ObjectNotFound' 'hvkit.SnapshotNotFound' 'Hyper-V was unable to find a checkpoint with the given ID.' $P.SnapshotId }
$held = @(Get-VMHardDiskDrive -VMSnapshot $snap)
$path = $null
foreach ($d in $held) { if ($d.Path -eq $P.Path) { $path = $d.Path } }
if (-not $path) {
    foreach ($c in @(Get-VMHardDiskDrive -VM $vm)) {
        if ($c.Path -ne $P.Path) { continue }
        foreach ($d in $held) {
            if ($d.ControllerType -eq $c.ControllerType -and $d.ControllerNumber -eq $c.ControllerNumber -and $d.ControllerLocation -eq $c.ControllerLocation) { $path = $d.Path }
        }
    }
}
if (-not $path) { hvkFail 'ObjectNotFound' 'hvkit.VolumeNotFound' 'The checkpoint holds no such virtual hard disk.' $P.Path }
$source = hvkVhd $path
if ($source.ParentPath) {
    if (Test-Path -LiteralPath $P.Destination) { hvkFail 'ResourceExists' 'hvkit.AlreadyExists' 'The destination file exists.' $P.Destination }
    Convert-VHD -Path $path -DestinationPath $P.Destination -VHDType Dynamic
    $out = hvkVhd $P.Destination
    $out.Merged = $true
} else {
    $out = $source
    $out.Merged = $false
}
$out.Source = $path
"""

_HOST_METRICS = r"""
$vmHost = Get-VMHost
$sample = Get-Counter -Counter '\Processor(_Total)\% Processor Time' -SampleInterval 1 -MaxSamples 1
$os = Get-CimInstance -ClassName Win32_OperatingSystem
$out = [ordered]@{ ComputerName = $vmHost.ComputerName; CpuPercent = $sample.CounterSamples[0].CookedValue; TotalKB = $os.TotalVisibleMemorySize; FreeKB = $os.FreePhysicalMemory }
"""

TEMPLATES: dict[str, Template] = {
    t.id: t
    for t in (
        Template("inventory", 1, _INVENTORY),
        Template("vm.get", 1, _VM_GET),
        Template("vm.create", 1, _VM_CREATE),
        Template("vm.delete", 1, _VM_DELETE),
        Template("vm.power", 1, _VM_POWER),
        Template("vm.reconfigure", 1, _VM_RECONFIGURE),
        Template("vm.clone", 1, _VM_CLONE),
        Template("vm.migrate", 2, _VM_MIGRATE),
        Template("vm.metrics", 1, _VM_METRICS),
        Template("snapshot.list", 1, _SNAPSHOT_LIST),
        Template("snapshot.create", 1, _SNAPSHOT_CREATE),
        Template("snapshot.revert", 1, _SNAPSHOT_REVERT),
        Template("snapshot.delete", 1, _SNAPSHOT_DELETE),
        Template("snapshot.export", 1, _SNAPSHOT_EXPORT),
        Template("volume.list", 2, _VOLUME_LIST),
        Template("volume.create", 1, _VOLUME_CREATE),
        Template("volume.delete", 2, _VOLUME_DELETE),
        Template("volume.export", 1, _VOLUME_EXPORT),
        Template("host.metrics", 1, _HOST_METRICS),
    )
}


def template(template_id: str) -> Template:
    return TEMPLATES[template_id]
