"""glibc's mmap threshold, fixed at start so that freed activations go back to the system."""


def test_the_mmap_threshold_is_fixed_at_start_unless_the_environment_sets_it(monkeypatch):
    from tlkit import allocator

    calls = []

    class FakeGlibc:
        def mallopt(self, option, value):
            calls.append((option, value))
            return 1

    monkeypatch.setattr(allocator, "glibc", lambda: FakeGlibc())
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "262144")
    allocator.fix_mmap_threshold()
    assert calls == []  # the user's own setting stands
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    allocator.fix_mmap_threshold()
    assert calls == [(-3, 4 * 1024 * 1024)]  # M_MMAP_THRESHOLD, 4 MB
