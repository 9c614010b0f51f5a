"""What a fit means: recovering ``r̂`` components from ``m`` (:func:`recover`), matching them
against a known truth (:func:`match`), and the per-step diagnostics of a trajectory."""
