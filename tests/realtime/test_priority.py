"""The model thread's real-time priority: above normal threads on a busy machine, or said clearly where the OS
refuses it."""

from __future__ import annotations

import os

import pytest

from realtime.controls import Controls
from realtime.engine import Engine, raise_priority
from realtime.processor import BlockProcessor
from sae.errors import UserError
from sae.steering import EditState


def _engine(rave_model, rt_priority: int) -> Engine:
    return Engine(
        BlockProcessor(rave_model, None, 1024, delay=0), Controls(EditState(64)), period=256, rt_priority=rt_priority
    )


def test_the_model_thread_runs_at_the_priority_it_reports(rave_model):
    """What the start-up line says is what the kernel has: SCHED_FIFO at the asked priority when granted (root,
    or the audio group's rtprio), the normal scheduler otherwise and with 0."""
    with _engine(rave_model, 3) as engine:
        tid = engine._thread.native_id
        granted = os.sched_getscheduler(tid) == os.SCHED_FIFO
        assert granted == (engine.priority == "real-time priority 3 (SCHED_FIFO)"), engine.priority
        if granted:
            assert os.sched_getparam(tid).sched_priority == 3
        else:
            assert engine.priority.startswith("normal priority (real-time priority 3 refused"), engine.priority
    with _engine(rave_model, 0) as engine:
        assert os.sched_getscheduler(engine._thread.native_id) == os.SCHED_OTHER
        assert engine.priority == "normal priority"
    with pytest.raises(UserError, match=r"^--rt-priority 100: expected 0 \(normal scheduling\) to 99$"):
        _engine(rave_model, 100)


def test_a_refused_priority_is_named_with_what_to_do(monkeypatch):
    """A user outside the audio group: the engine runs at normal priority and the line says how to allow it."""

    def refuse(*_):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    said = raise_priority(os.getpid(), 1)
    assert said.startswith("normal priority (real-time priority 1 refused: operation not permitted; allow it")
    assert "rtprio" in said


def test_block_timing_runs_at_the_model_threads_priority_and_restores_it():
    """The block is chosen from timings taken as the model thread will run (a busy machine times a normal-priority
    thread far slower); the calling thread gets its own scheduling back afterwards."""
    from realtime.engine import priority_while

    assert os.sched_getscheduler(0) == os.SCHED_OTHER
    with priority_while(2):
        inside = os.sched_getscheduler(0), os.sched_getparam(0).sched_priority
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
    granted = raise_priority(os.getpid(), 2).startswith("real-time")  # the main thread: restored right below
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    assert inside == ((os.SCHED_FIFO, 2) if granted else (os.SCHED_OTHER, 0))
    with priority_while(0):
        assert os.sched_getscheduler(0) == os.SCHED_OTHER
