"""Importing the Pop Music Transformer's checkpoints (issue 17): against what its own code produced
(tests/data/remi, written by tools/make_remi_fixtures.py from github:YatingMusic/remi's model.py): logits within
1e-4, the same greedy events; the restricted dictionary unpickler; refusals by name; the CLI."""

import json
import pickle
import shutil
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from musicgen_tf.cli import main
from musicgen_tf.errors import MusicgenError
from musicgen_tf.interop.remi import (DICTIONARY, CheckpointImportError, canonical_names, import_checkpoint,
                                      read_checkpoint, read_dictionary)
from musicgen_tf.music.midi_io import midi_file_to_note_sequence
from musicgen_tf.music.remi import RemiConverter
from musicgen_tf.music.remi_pop import FLAVOUR
from musicgen_tf.train.trainer import load_trained_model
from musicgen_tf.txl_generation import write_events

DATA = Path(__file__).resolve().parents[1] / "data" / "remi"
FLAVOURS = {"tempo": "REMI-tempo-checkpoint", "tempo_chord": "REMI-tempo-chord-checkpoint"}
MEM_LEN = 16  # the fixtures' tiny network


def expected(flavour):
    return (json.loads((DATA / f"generation_{flavour}.json").read_text()),
            np.load(DATA / f"generation_{flavour}.npz"))


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """flavour -> the TrainedRun of the imported fixture checkpoint."""
    runs = {}
    for flavour, folder in FLAVOURS.items():
        run_dir = tmp_path_factory.mktemp("runs") / flavour
        import_checkpoint(DATA / folder, run_dir, mem_len=MEM_LEN)
        runs[flavour] = load_trained_model(str(run_dir))
    return runs


def write_tf1_checkpoint(prefix: Path, variables: dict) -> None:
    """A TF1 checkpoint holding `variables` under exactly those names (as the original's Saver writes them)."""
    with tf.Graph().as_default():
        made = [tf.compat.v1.Variable(value, name=name) for name, value in variables.items()]
        saver = tf.compat.v1.train.Saver({v.op.name: v for v in made})
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, str(prefix), write_meta_graph=False)


def modified_checkpoint(tmp_path, change, flavour="tempo") -> Path:
    """A copy of a fixture checkpoint folder whose variables went through `change(dict)`."""
    folder = tmp_path / "changed"
    folder.mkdir()
    shutil.copy(DATA / FLAVOURS[flavour] / "dictionary.pkl", folder)
    variables = read_checkpoint(DATA / FLAVOURS[flavour])
    write_tf1_checkpoint(folder / "model", change(dict(variables)))
    return folder


# ---------------------------------------------------------------------------------------- logits and greedy events
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_logits_equal_the_original_graphs(imported, flavour):
    info, arrays = expected(flavour)
    model = imported[flavour].model
    prompt_logits, step_logits = model.logits_sliding(arrays["prompt_words"], arrays["generated_words"][:-1])
    np.testing.assert_allclose(prompt_logits.numpy(), arrays["prompt_logits"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(step_logits.numpy(), arrays["step_logits"], atol=1e-4, rtol=0)
    assert len(arrays["step_logits"]) == info["max_tokens"] - 1 > MEM_LEN  # the memory slid past its size


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_greedy_continuation_emits_the_originals_events(imported, flavour):
    info, arrays = expected(flavour)
    run = imported[flavour]
    ids = run.converter.encode_ids(midi_file_to_note_sequence(str(DATA / info["prompt"])))
    prompt = run.converter.continuation_prompt(ids)  # its events + one Bar_None, as the original feeds them
    np.testing.assert_array_equal(prompt, arrays["prompt_words"])
    tokens = run.model.continue_tokens(prompt, info["target_bars"] - 1, temperature=0.0,
                                       max_tokens=len(prompt) + info["max_tokens"])[0]
    assert run.converter.original_event_names(tokens[len(prompt):]) == info["generated_events"]
    assert "Bar_None" in info["generated_events"]


def test_layer_norms_are_mapped_by_place_not_number(tmp_path, imported):
    def renumber(variables):  # the counters of another graph: rel_attn norms get odd numbers, ff norms even
        out = {}
        for name, value in variables.items():
            if "/layer_normalization" in name:
                layer, scope = int(name.split("/")[1].split("_")[1]), name.split("/")[2]
                number = 2 * layer + (1 if scope == "rel_attn" else 0) + 10
                name = "/".join(name.split("/")[:3] + [f"layer_normalization_{number}"] + name.split("/")[4:])
            out[name] = value
        return out

    run_dir = tmp_path / "run"
    import_checkpoint(modified_checkpoint(tmp_path, renumber), run_dir, mem_len=MEM_LEN)
    ids = expected("tempo")[1]["prompt_words"]
    np.testing.assert_allclose(load_trained_model(str(run_dir)).model.logits_sliding(ids, [])[0].numpy(),
                               imported["tempo"].model.logits_sliding(ids, [])[0].numpy(), atol=1e-6)


# ------------------------------------------------------------------------------------------------ dictionary.pkl
def test_the_dictionary_is_read_in_its_own_order():
    info, arrays = expected("tempo")
    vocabulary = read_dictionary(DATA / FLAVOURS["tempo"] / "dictionary.pkl")
    assert [vocabulary[w] for w in arrays["prompt_words"]] == info["prompt_events"]
    assert vocabulary != sorted(vocabulary) and vocabulary[0] != "Bar_None"  # shuffled: no order assumed


class Payload:
    def __reduce__(self):
        return (Path.mkdir, (Path("/tmp/remi-import-pickle-ran"),))


@pytest.mark.parametrize("value,named", [
    ((OrderedDict(a=0), {0: "a"}), "collections OrderedDict"),  # protocol 3: GLOBAL
    ((Payload(), {}), "STACK_GLOBAL pathlib.Path.mkdir"),
    (({"Bar_None": np.int64(0)}, {0: "Bar_None"}), "STACK_GLOBAL numpy"),
])
def test_a_pickle_naming_a_class_or_function_is_refused_unexecuted(tmp_path, value, named):
    path = tmp_path / "dictionary.pkl"
    path.write_bytes(pickle.dumps(value, protocol=3 if "OrderedDict" in named else 4))
    with pytest.raises(CheckpointImportError, match="dictionary.pkl: refused: the pickle uses ") as error:
        read_dictionary(path)
    assert named in str(error.value)
    assert not Path("/tmp/remi-import-pickle-ran").exists()


def test_a_handwritten_reduce_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "dictionary.pkl"
    path.write_bytes(b"cos\nmkdir\n(S'" + str(marker).encode() + b"'\ntR.")
    with pytest.raises(CheckpointImportError, match="GLOBAL os mkdir"):
        read_dictionary(path)
    assert not marker.exists()


@pytest.mark.parametrize("value,message", [
    ({"Bar_None": 0}, "tuple"),
    (({"Bar_None": 0, "Note On_60": 1}, {0: "Bar_None", 1: "Note On_61"}), "not inverse"),
    (({"Bar_None": 0}, {1: "Bar_None"}), "ids are not 0..0"),
    (({"Note On_60": 0}, {0: "Note On_60"}), "no Bar_None"),
    (({"Bar_None": "0"}, {0: "Bar_None"}), "event2word"),
])
def test_a_dictionary_of_another_shape_is_refused(tmp_path, value, message):
    path = tmp_path / "dictionary.pkl"
    path.write_bytes(pickle.dumps(value, protocol=3))
    with pytest.raises(CheckpointImportError, match=message):
        read_dictionary(path)


# ------------------------------------------------------------------------------------------------------ refusals
def test_variables_that_do_not_fit_are_refused_by_name(tmp_path):
    def extra(variables):
        variables["transformer/layer_1/rel_attn/gate/kernel"] = np.zeros([32, 32], np.float32)
        return variables

    with pytest.raises(CheckpointImportError, match="transformer/layer_1/rel_attn/gate/kernel"):
        import_checkpoint(modified_checkpoint(tmp_path, extra), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_missing_variable_is_named(tmp_path):
    def drop(variables):
        del variables["transformer/layer_1/rel_attn/r/kernel"]
        return variables

    with pytest.raises(CheckpointImportError, match=r"no variable for .*block_1/attention/position/kernel"):
        import_checkpoint(modified_checkpoint(tmp_path, drop), tmp_path / "run")


@pytest.mark.parametrize("name,shape,message", [
    ("transformer/layer_0/ff/layer_2/kernel", [48, 16], "layer_2/kernel has shape \\[48, 16\\]"),
    ("transformer/r_w_bias", [2, 2, 16], "untie_r=True"),
    ("transformer/normal_embed/lookup_table", [200, 32], "200 rows but .*264 events"),
])
def test_wrong_shapes_are_refused_by_name(tmp_path, name, shape, message):
    def reshape(variables):
        variables[name] = np.zeros(shape, np.float32)
        return variables

    with pytest.raises(CheckpointImportError, match=message):
        import_checkpoint(modified_checkpoint(tmp_path, reshape), tmp_path / "run")


def test_two_layer_norms_in_one_scope_are_refused():
    names = ["transformer/layer_0/ff/layer_normalization_1/gamma", "transformer/layer_0/ff/layer_normalization_3/beta"]
    with pytest.raises(CheckpointImportError, match="layer_0/ff has 2 layer norms"):
        canonical_names(names)


def test_not_a_checkpoint_folder_and_an_existing_run_dir_are_refused(tmp_path):
    with pytest.raises(CheckpointImportError, match="no model.index"):
        import_checkpoint(tmp_path, tmp_path / "run")
    (tmp_path / "run").mkdir()
    with pytest.raises(CheckpointImportError, match="already exists"):
        import_checkpoint(DATA / FLAVOURS["tempo"], tmp_path / "run")


# ----------------------------------------------------------------------------------------------------------- CLI
def test_cli_import_then_greedy_generation_writes_the_originals_events(tmp_path, capsys):
    info, _ = expected("tempo_chord")
    run_dir, out = tmp_path / "runs" / "remi", tmp_path / "out"
    assert main(["import-remi", "--checkpoint", str(DATA / FLAVOURS["tempo_chord"]), "--run-dir", str(run_dir),
                 "--mem-len", str(MEM_LEN)]) == 0
    assert "26 variables" in capsys.readouterr().out
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["remi"]  # nothing left beside it
    events = tmp_path / "events.json"
    assert main(["generate", "--run-dir", str(run_dir), "--out", str(out), "--prompt", str(DATA / info["prompt"]),
                 "--temperature", "0", "--max-tokens", str(info["max_tokens"]), "--events-out", str(events)]) == 0
    written = json.loads(events.read_text())
    assert written == {"prompt_events": info["prompt_events"], "generated_events": info["generated_events"]}
    assert (out / "continuation-00.mid").is_file()
    # --bars N ends as the original's n_target_bar = N: at the N-th bar line it writes, kept
    assert main(["generate", "--run-dir", str(run_dir), "--out", str(out), "--prompt", str(DATA / info["prompt"]),
                 "--temperature", "0", "--bars", "1", "--events-out", str(events)]) == 0
    assert json.loads(events.read_text())["generated_events"] == info["one_bar"]["generated_events"]
    assert info["one_bar"]["generated_events"][-1] == "Bar_None" and info["one_bar"]["ended_by"] == "bars"
    # from scratch: the original's opening (Bar, Position, chord, Position, tempo), then sampling; bar-exact end
    assert main(["generate", "--run-dir", str(run_dir), "--out", str(out), "--bars", "2", "--seed", "3",
                 "--max-tokens", "60", "--events-out", str(events)]) == 0
    written = json.loads(events.read_text())
    assert written["prompt_events"][:3] == ["Bar_None", "Position_1/16", written["prompt_events"][2]]
    assert written["prompt_events"][2].startswith("Chord_") and written["prompt_events"][4].startswith("Tempo Class")
    assert 1 <= len(written["generated_events"]) <= 60
    assert main(["generate", "--run-dir", str(run_dir), "--out", str(out), "--beam", "2"]) == 2
    assert "--beam" in capsys.readouterr().err


def test_events_out_holds_one_piece(tmp_path):
    converter = RemiConverter(flavour=FLAVOUR, vocabulary=read_dictionary(DATA / FLAVOURS["tempo"] / DICTIONARY))
    bar = converter.vocab.token_to_id("Bar_None")
    write_events(tmp_path / "e.json", converter, [bar], [np.array([bar, 5, bar, -1, -1])])
    names = converter.vocab.tokens
    assert json.loads((tmp_path / "e.json").read_text()) == {"prompt_events": ["Bar_None"],
                                                             "generated_events": [names[5], "Bar_None"]}
    with pytest.raises(MusicgenError, match="--num 1"):
        write_events(tmp_path / "e.json", converter, [bar], [np.array([bar]), np.array([bar])])
