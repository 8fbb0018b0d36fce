//! The regression suite: end-to-end runs of the `profundo` binary on real data, with the
//! accuracy floors every shipped pipeline must keep, and the bad-input contract.

mod bad_input;
mod bench;
mod data;
mod engine;
mod faces;
mod faces_detect;
mod faults;
mod fuzz;
mod hostile;
mod perception;
mod protocols;
mod quickstart;
mod recommend;
mod serve;
mod translate;
mod util;
