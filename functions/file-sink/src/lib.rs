//! The file sink's parts that the all-in-one `cdc-pipeline` embeds as well: the transform
//! stage in front of the sink (`TRANSFORM_CONFIG`) and its dead letters.

pub mod transform;
