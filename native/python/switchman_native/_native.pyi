# Type stubs of the compiled module (native/src). One section per source file.

# --- router.rs ---

# --- pii.rs ---

# --- request.rs ---
