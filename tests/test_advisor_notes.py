"""Device-level notes of the advisor: hazards that come from the device, not an option."""

from __future__ import annotations

from flatview import api

# seed 003, Alexey Kardashevskiy, 2017-12-19: "It is fully packed" (three 64-bit BARs use
# all six BAR registers: 0+1, 2+3, 4+5).
BCM5719 = """\
001e:80:00.2 Ethernet controller: Broadcom Corporation NetXtreme BCM5719 Gigabit \
Ethernet PCIe (rev 01)
Region 0: Memory at 3fc2c0250000 (64-bit, prefetchable) [size=64K]
Region 2: Memory at 3fc2c0240000 (64-bit, prefetchable) [size=64K]
Region 4: Memory at 3fc2c0230000 (64-bit, prefetchable) [size=64K]
Capabilities: [a0] MSI-X: Enable- Count=17 Masked-
        Vector table: BAR=4 offset=00000000
        PBA: BAR=4 offset=00000120
"""


def test_fully_packed_device_only_extends():
    advice, _ = api.advise(BCM5719, "bcm.txt", [64 * 1024])
    (a,) = advice
    assert any("every BAR slot is taken" in e for e in a.explanations)
    valid = {r.option for r in a.relocations if r.valid and r.option != "off"}
    # slots 1, 3, 5 are upper halves; 0, 2, 4 exist: only extensions remain
    assert valid == {"bar0", "bar2", "bar4"}
    assert all(
        not r.relocation.bar(int(r.option[3:])).created for r in a.relocations if r.option in valid
    )


def test_bundled_sas3008_explains_the_unassigned_io_bar():
    text, name = api.bundled_sample()
    advice, _ = api.advise(text, name, [64 * 1024])
    (a,) = advice
    # seed 003's `lspci -vbxs 0001:03:00.0`: "I/O ports at <unassigned> [disabled]"
    assert any("left unassigned" in e and "bar0" in e for e in a.explanations)
    (bar0,) = [r for r in a.relocations if r.option == "bar0"]
    assert bar0.error == "vfio 0001:03:00.0: Invalid MSI-X relocation BAR 0, I/O port BAR"


def test_advise_reads_one_machine_state_per_input():
    # Seed 003 holds the flat views of four configurations and two trees.  By default the
    # advisor reads the first dump (test #1, `off`, line 81); --dump picks test #3's flat
    # view (line 126) with its tree (line 142), where MSI-X sits at BAR1 + 64K.
    text, name = api.bundled_sample()
    (first,), _ = api.advise(text, name, [64 * 1024])
    assert first.facts.relocated_to is None
    (bar1,), _ = api.advise(text, name, [64 * 1024], lines=[126, 142])
    assert bar1.facts.relocated_to == 1
    assert (bar1.facts.observed_msix.table_bar, bar1.facts.observed_msix.table_offset) == (
        1,
        0x10000,
    )


def test_sub_page_bar_unaligned_on_the_host_is_never_mapped():
    # A 16K BAR at host address 0xfe004000 on a 64K-page host: 0xfe004000 % 0x10000 =
    # 0x4000, so the kernel refuses to mmap it (vfio_pci_probe_mmaps); no relocation can
    # help, since relocation never moves the host BAR.  (At 0x630040010000, page aligned,
    # extending BAR0 recovers the page: see test_advisor's NVMe tests.)
    text = (
        "0000:01:00.0 Non-Volatile memory controller: Example [8086:0b60]\n"
        "\tRegion 0: Memory at fe004000 (64-bit, non-prefetchable) [size=16K]\n"
        "\tCapabilities: [b0] MSI-X: Enable- Count=136 Masked-\n"
        "\t\tVector table: BAR=0 offset=00002000\n"
        "\t\tPBA: BAR=0 offset=00003000\n"
    )
    assert 0xFE004000 % 0x10000 == 0x4000
    (a,), _ = api.advise(text, "t.txt", [64 * 1024])
    (bar0,) = a.simulated
    assert (bar0.ramd_bytes, bar0.pages_lost) == (0, 1)
    assert all(r.pages_recovered == 0 for r in a.relocations)
    assert "no relocation recovers any" in a.recommendation
