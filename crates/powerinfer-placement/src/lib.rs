//! Greedy placement of hot neurons on the accelerator under a byte budget.
#![deny(unsafe_op_in_unsafe_fn)]
