"""Representation code shared by models: MIDI I/O, converters (melody, drums, GrooVAE, REMI, ...), rendering."""
