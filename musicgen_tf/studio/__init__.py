"""`musicgen studio`: a Streamlit page to sample, continue and interpolate with exported models.

`backend` holds everything testable without Streamlit (model discovery, calls, results -> files), `app` is the thin
Streamlit script, `launch` starts it (`add_studio_arguments`, `run_studio`).
"""
