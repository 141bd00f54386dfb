from consumers.acks import OrderedAcks


def test_acks_only_the_done_prefix_of_each_partition():
    acks = OrderedAcks()
    for offset in range(5):
        acks.track(0, offset, f"p0-{offset}")
    acks.track(1, 7, "p1-7")
    acks.complete(0, 1)
    acks.complete(0, 2)
    acks.complete(1, 7)
    assert acks.ready() == ["p1-7"]          # partition 0 still waits for offset 0
    acks.complete(0, 0)
    assert acks.ready() == ["p0-0", "p0-1", "p0-2"]
    assert acks.pending() == 2
    acks.complete(0, 4)
    assert acks.ready() == []                # 3 is not done
    acks.complete(0, 3)
    assert acks.ready() == ["p0-3", "p0-4"] and acks.pending() == 0


def test_reset_forgets_everything():
    acks = OrderedAcks()
    acks.track(0, 1, "a")
    acks.complete(0, 1)
    acks.reset()
    assert acks.ready() == [] and acks.pending() == 0
