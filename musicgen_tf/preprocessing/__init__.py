"""Raw corpus -> NoteSequence / waveform (readers) -> representation (converters) -> TFRecords (Beam pipeline)."""
