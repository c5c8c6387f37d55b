"""The studio page (a Streamlit script): `streamlit run app.py -- --models models/ [--server host:8501]`.

Thin by design: every action calls `musicgen_tf.studio.backend` (the same convert/render code as the CLI) and the
page only lays out the results: piano roll, sheet music, audio player and downloads.  Errors are shown as messages.
"""

from __future__ import annotations

import argparse
import base64
import sys
import tempfile
from pathlib import Path

import streamlit as st

from musicgen_tf.studio import backend
from musicgen_tf.studio.backend import StudioError

MIME = {"mid": "audio/midi", "wav": "audio/wav", "musicxml": "application/vnd.recordare.musicxml+xml"}
SHEET_STYLE = ("background:#fff;border:1px solid #e6e6e6;border-radius:8px;padding:6px 10px;overflow-x:auto;"
               "max-width:100%")
VERBS = {"sample": "Sampling", "continue": "Continuing the melody", "interpolate": "Interpolating",
         "continue_midi": "Continuing the MIDI file", "reconstruct": "Encoding and decoding"}


def _args():
    parser = argparse.ArgumentParser(prog="musicgen studio")
    parser.add_argument("--models", default="models")
    parser.add_argument("--server", default=None)
    args, _ = parser.parse_known_args(sys.argv[1:])
    return args


@st.cache_resource(show_spinner="Loading the model...")
def _model(path: str, server: str | None):
    """One LocalModel / ServingClient per export and server, shared by every session (SavedModels load once)."""
    return backend.open_model(backend.model_info(path), server=server)


def _workdir() -> Path:
    if "workdir" not in st.session_state:
        st.session_state.workdir = tempfile.mkdtemp(prefix="musicgen-studio-")
        st.session_state.runs = 0
    return Path(st.session_state.workdir)


def _run(info: backend.ModelInfo, server: str | None, command: str, **kwargs):
    """Call the backend; keep the Generation (or the error message) in the session for the results area."""
    st.session_state.runs = st.session_state.get("runs", 0) + 1
    out = _workdir() / f"{st.session_state.runs:04d}-{info.name}-{command}"
    try:
        with st.spinner(f"{VERBS[command]} with {info.name}..."):
            generation = backend.generate(_model(info.path, server), command, out, **kwargs)
        st.session_state.result = {"model": info.name, "generation": generation, "error": None}
    except StudioError as error:
        st.session_state.result = {"model": info.name, "generation": None, "error": str(error)}
    except Exception as error:  # the page never crashes: anything unexpected is still a message
        st.session_state.result = {"model": info.name, "generation": None,
                                   "error": f"unexpected {type(error).__name__}: {error}"}


def _upload(file, info: backend.ModelInfo, which: str = "") -> str:
    if file is None:
        raise StudioError(f"upload the {'WAV' if info.is_audio else 'MIDI'} file {which}".rstrip() + " first")
    return backend.save_upload(file.getvalue(), file.name, _workdir() / "uploads" / which,
                               info.metadata["converter"])


def _run_upload(info, server, command: str, file, **kwargs):
    """Check and save the upload, then run `command` on it (a bad upload is shown like any other error)."""
    try:
        with st.spinner("Reading the upload..."):
            upload = _upload(file, info)
    except StudioError as error:
        st.session_state.result = {"model": info.name, "generation": None, "error": str(error)}
    else:
        _run(info, server, command, upload=upload, **kwargs)


def _label(info, key: str) -> int | None:
    """A select box of the export's genres (labels), when its data schema names them: the chosen id, None = any."""
    if info.labels is None:
        return None
    name, vocabulary = info.labels
    choice = st.selectbox(name[:-3].capitalize(), ["any (one of each in turn)"] + vocabulary, key=key)
    return vocabulary.index(choice) if choice in vocabulary else None


def _sample_tab(info, server):
    with st.form(f"sample-{info.name}", border=False):
        num, temperature, seed = st.columns(3)
        num = num.number_input("Pieces", min_value=1, max_value=8, value=2)
        temperature = temperature.slider("Temperature", 0.0, 2.0, 1.0, 0.05,
                                         help="0 = most likely notes; higher = more surprising")
        seed = seed.number_input("Seed", min_value=0, max_value=2 ** 31 - 2, value=1,
                                 help="the same seed and temperature give the same music")
        extra = {}
        if info.is_txl:
            bars, top_k = st.columns(2)
            extra = {"steps": int(bars.slider("Bars", 1, 16, 4, key=f"sb-{info.name}")),
                     "top_k": int(top_k.number_input("Top-k", 0, 512, 0, key=f"sk-{info.name}",
                                                     help="sample among the k most likely tokens; 0 = all"))}
        elif info.labels is not None:
            extra = {"label": _label(info, f"sg-{info.name}")}
        if st.form_submit_button("Sample", type="primary"):
            _run(info, server, "sample", num=int(num), temperature=float(temperature), seed=int(seed), **extra)


def _continue_tab(info, server):
    with st.form(f"continue-{info.name}", border=False):
        prompt = st.text_input("Seed melody", "60 _ _ 62 _ 64",
                               help="MIDI pitches (60 = middle C) one per sixteenth note; '_' holds the previous "
                                    "note, '-' is a rest")
        steps, temperature, seed = st.columns(3)
        steps = steps.slider("Sixteenth notes to add", 4, 128, 32, 4)
        temperature = temperature.slider("Temperature", 0.0, 2.0, 1.0, 0.05, key=f"ct-{info.name}")
        seed = seed.number_input("Seed", min_value=0, max_value=2 ** 31 - 2, value=1, key=f"cs-{info.name}")
        if st.form_submit_button("Continue", type="primary"):
            _run(info, server, "continue", prompt=prompt, steps=int(steps), temperature=float(temperature),
                 seed=int(seed))


def _interpolate_tab(info, server):
    left, right = st.columns(2)
    file_a = left.file_uploader("MIDI file A", type=["mid", "midi"], key=f"a-{info.name}")
    file_b = right.file_uploader("MIDI file B", type=["mid", "midi"], key=f"b-{info.name}")
    steps = st.slider("Steps (both ends included)", 2, 11, 5, key=f"is-{info.name}")
    if st.button("Interpolate", type="primary", key=f"ib-{info.name}"):
        try:
            midi_a, midi_b = _upload(file_a, info, "A"), _upload(file_b, info, "B")
        except StudioError as error:
            st.session_state.result = {"model": info.name, "generation": None, "error": str(error)}
        else:
            _run(info, server, "interpolate", midi_a=midi_a, midi_b=midi_b, steps=int(steps))


def _continue_midi_tab(info, server):
    file = st.file_uploader("MIDI prompt", type=["mid", "midi"], key=f"cm-{info.name}")
    keep, add, top_k = st.columns(3)
    keep = keep.slider("Bars of the prompt to keep", 1, 16, 4, key=f"ck-{info.name}")
    add = add.slider("Bars to add", 1, 16, 4, key=f"ca-{info.name}")
    top_k = top_k.number_input("Top-k", 0, 512, 0, key=f"cmk-{info.name}", help="0 = all tokens")
    temperature, seed = st.columns(2)
    temperature = temperature.slider("Temperature", 0.0, 2.0, 1.0, 0.05, key=f"cmt-{info.name}")
    seed = seed.number_input("Seed", min_value=0, max_value=2 ** 31 - 2, value=1, key=f"cms-{info.name}")
    if st.button("Continue", type="primary", key=f"cmb-{info.name}"):
        _run_upload(info, server, "continue_midi", file, prompt_bars=int(keep), steps=int(add), top_k=int(top_k),
                    temperature=float(temperature), seed=int(seed))


def _reconstruct_tab(info, server):
    kinds = ["wav"] if info.is_audio else ["mid", "midi"]
    file = st.file_uploader("WAV file" if info.is_audio else "MIDI file", type=kinds, key=f"r-{info.name}")
    st.caption("The model encodes the first window its converter makes of the file and decodes it again "
               "(most likely output).")
    label = _label(info, f"rg-{info.name}") if info.is_audio else None
    if st.button("Reconstruct", type="primary", key=f"rb-{info.name}"):
        _run_upload(info, server, "reconstruct", file, label=label)


def _show_result(result: backend.Result, index: int):
    with st.container(border=True):
        st.markdown(f"**{result.stem}**")
        roll, side = st.columns([3, 1], vertical_alignment="center")
        for kind in ("png", "waveform_png", "spectrogram_png"):
            if kind in result.files:
                roll.image(result.files[kind])
        side.audio(Path(result.files["wav"]).read_bytes(), format="audio/wav")
        for kind, label in (("mid", "MIDI"), ("wav", "WAV"), ("musicxml", "MusicXML")):
            if kind in result.files:
                path = Path(result.files[kind])
                side.download_button(f"Download {label}", path.read_bytes(), file_name=path.name, mime=MIME[kind],
                                     key=f"dl-{index}-{kind}-{path.parent.name}")
        if result.svg:
            # an <img> of the SVG: st.html's sanitizer drops inline <svg>, a data: URI keeps Verovio's glyph defs
            data = base64.b64encode(result.svg.encode("utf-8")).decode("ascii")
            st.html(f'<div class="musicgen-sheet" style="{SHEET_STYLE}">'
                    f'<img alt="sheet music of {result.stem}" src="data:image/svg+xml;base64,{data}" '
                    'style="max-width:100%;height:auto"></div>')
        elif result.sheet_note:
            st.caption(result.sheet_note)


def _show_results():
    state = st.session_state.get("result")
    if not state:
        st.info("Pick a model, set the controls and press the button: results appear here.")
        return
    if state["error"]:
        st.error(state["error"])
        return
    generation = state["generation"]
    facts = [f"model **{state['model']}**", generation.command]
    if generation.seed is not None:
        facts.append(f"seed {generation.seed}")
    st.markdown("#### Results\n" + " · ".join(facts))
    if generation.text:
        st.code(generation.text, language=None)
    for index, result in enumerate(generation.results):
        _show_result(result, index)


def main():
    st.set_page_config(page_title="musicgen studio", page_icon=":musical_keyboard:", layout="wide")
    args = _args()
    st.title("musicgen studio")
    where = f"TF Serving at `{args.server}`" if args.server else "in-process (SavedModel)"
    try:
        found = backend.discover(args.models)
    except StudioError as error:
        st.error(str(error))
        return
    with st.sidebar:
        st.header("Model")
        st.caption(f"Exports in `{args.models}`, called {where}.")
        if not found.models:
            st.warning("No exported models here yet: run `musicgen export --run-dir RUN --export-dir "
                       f"{args.models} --name NAME`.")
        by_name = {model.name: model for model in found.models}
        name = st.radio("Exported models", list(by_name), label_visibility="collapsed") if by_name else None
        info = by_name.get(name)
        if info is not None:
            st.markdown(f"**{info.name}**  \n{info.describe()}")
            st.caption("Signatures: " + ", ".join(s for s in info.signatures if s != backend.CONFIG_SIGNATURE))
        if found.problems:
            with st.expander(f"{len(found.problems)} folder(s) skipped"):
                for folder, message in found.problems:
                    st.caption(message)
    if info is None:
        _show_results()
        return
    tabs = [("Sample", _sample_tab, info.can("sample")),
            ("Continue a melody", _continue_tab, info.can("continue")),
            ("Continue a MIDI file", _continue_midi_tab, info.can("continue_midi")),
            ("Interpolate", _interpolate_tab, info.can("interpolate")),
            ("Reconstruct", _reconstruct_tab, info.can("reconstruct"))]
    tabs = [(name, fn) for name, fn, ok in tabs if ok]
    if not tabs:
        st.warning(f"{info.name} has none of the signatures the studio uses (sample, generate + continue, "
                   "continue_melody, interpolate, encode + decode, reconstruct).")
    else:
        for (name, fn), tab in zip(tabs, st.tabs([name for name, _ in tabs])):
            with tab:
                fn(info, args.server)
    st.divider()
    _show_results()


main()
