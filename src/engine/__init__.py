"""designkit's training and scoring engine (torch, Lightning Fabric, LitGPT).

The engine reads a PLAN dir and writes a RUN dir (docs/formats.md). Training lives in
``engine.train`` (public entry ``engine.train.train``); the data stream that carries the
plan's edits out lives in ``engine.stream``. This package imports nothing heavy on
import, so ``designkit`` can import it lazily.
"""
