//! The CodeAI guest runtime.
