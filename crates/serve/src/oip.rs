//! The Open Inference Protocol v2 (KServe's "V2 inference protocol", spoken by NVIDIA
//! Triton, KServe and Seldon MLServer), REST/JSON flavour: the typed request, response and
//! metadata documents, and reading a request's tensors.
//!
//! Tensor data is accepted flat (`[1, 2, 3, 4]`) or nested in row-major order
//! (`[[1, 2], [3, 4]]`); either way its element count must match `shape`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;

/// One uploaded file (a WAV clip, a photo) and the name its answer echoes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// Echoed as the answer's `path`: `?path=` on the plain routes, `INPUT[i]` in the
    /// protocol, so that errors name the element.
    pub name: String,
    /// The file's bytes.
    pub bytes: Vec<u8>,
}

/// A request or tensor parameter: `{"k": 10}`, `{"from": "es"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Parameter {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Text(String),
}

/// Named parameters of a request or tensor.
pub type Parameters = BTreeMap<String, Parameter>;

/// One input tensor of an inference request.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct RequestInput {
    /// The input's name (see the model's metadata).
    pub name: String,
    /// Its shape; `-1` is not allowed in a request.
    pub shape: Vec<i64>,
    /// `BYTES`, `INT64`, `FP32`, ...
    pub datatype: String,
    /// Per-tensor parameters (unused by profundo's models).
    #[serde(default)]
    pub parameters: Parameters,
    /// The elements, flat or nested in row-major order.
    #[schema(value_type = Vec<Object>)]
    pub data: serde_json::Value,
}

/// An output the client asks for (all outputs when the request names none).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct RequestOutput {
    /// The output's name.
    pub name: String,
}

/// `POST /v2/models/{name}/infer`'s body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct InferRequest {
    /// Echoed back in the response.
    #[serde(default)]
    pub id: Option<String>,
    /// Request parameters (`k`, `from`, `to`, `beam`, ...).
    #[serde(default)]
    pub parameters: Parameters,
    /// The input tensors.
    pub inputs: Vec<RequestInput>,
    /// The outputs wanted; empty for all.
    #[serde(default)]
    pub outputs: Vec<RequestOutput>,
}

/// The elements of an output tensor.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum OutputData {
    /// `BYTES` elements, as strings.
    Bytes(Vec<String>),
    /// `FP32` elements.
    Fp32(Vec<f32>),
    /// `INT64` elements.
    Int64(Vec<i64>),
}

impl OutputData {
    /// The protocol's name of this data type.
    pub fn datatype(&self) -> &'static str {
        match self {
            OutputData::Bytes(_) => "BYTES",
            OutputData::Fp32(_) => "FP32",
            OutputData::Int64(_) => "INT64",
        }
    }

    fn len(&self) -> usize {
        match self {
            OutputData::Bytes(v) => v.len(),
            OutputData::Fp32(v) => v.len(),
            OutputData::Int64(v) => v.len(),
        }
    }
}

/// One output tensor of an inference response.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ResponseOutput {
    /// The output's name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// `BYTES`, `INT64` or `FP32`.
    pub datatype: String,
    /// The elements, flat in row-major order.
    pub data: OutputData,
}

impl ResponseOutput {
    /// An output named `name` of `shape` holding `data` (whose length must be the shape's
    /// element count).
    pub fn new(name: &str, shape: Vec<usize>, data: OutputData) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Self {
            name: name.to_string(),
            shape,
            datatype: data.datatype().to_string(),
            data,
        }
    }
}

/// `POST /v2/models/{name}/infer`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct InferResponse {
    /// The model.
    pub model_name: String,
    /// The request's id, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The output tensors.
    pub outputs: Vec<ResponseOutput>,
}

/// An input or output tensor of a model's metadata (`-1`: any size).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TensorMetadata {
    /// The tensor's name.
    pub name: String,
    /// Its data type.
    pub datatype: String,
    /// Its shape.
    pub shape: Vec<i64>,
}

impl TensorMetadata {
    /// A tensor `name` of `datatype` and `shape`.
    pub fn new(name: &str, datatype: &str, shape: &[i64]) -> Self {
        Self {
            name: name.into(),
            datatype: datatype.into(),
            shape: shape.to_vec(),
        }
    }
}

/// `GET /v2/models/{name}`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ModelMetadata {
    /// The model's name on this server.
    pub name: String,
    /// Versions served (one: the model's profundo version).
    pub versions: Vec<String>,
    /// `profundo-<domain>`.
    pub platform: String,
    /// The inputs it takes.
    pub inputs: Vec<TensorMetadata>,
    /// The outputs it gives.
    pub outputs: Vec<TensorMetadata>,
    /// What the inputs hold, and the request parameters it reads.
    pub parameters: BTreeMap<String, String>,
}

/// `GET /v2`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ServerMetadata {
    /// `profundo`.
    pub name: String,
    /// profundo's version.
    pub version: String,
    /// Protocol extensions supported (none).
    pub extensions: Vec<String>,
}

/// `GET /v2/models/{name}/ready`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ModelReady {
    /// The model.
    pub name: String,
    /// Whether it is loaded and answering.
    pub ready: bool,
}

impl InferRequest {
    /// The input `name`, or an error listing the inputs the model takes.
    pub fn input(&self, name: &str, model_inputs: &[&str]) -> Result<&RequestInput, ApiError> {
        self.inputs.iter().find(|i| i.name == name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "the request has no input `{name}` (this model takes {})",
                model_inputs.join(", ")
            ))
        })
    }

    /// The integer parameter `name`, or `default` when absent.
    pub fn int_parameter(&self, name: &str, default: i64) -> Result<i64, ApiError> {
        match self.parameters.get(name) {
            None => Ok(default),
            Some(Parameter::Int(v)) => Ok(*v),
            Some(other) => Err(ApiError::bad_request(format!(
                "parameter `{name}` must be an integer, not {other:?}"
            ))),
        }
    }

    /// The string parameter `name`, if present.
    pub fn text_parameter(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.parameters.get(name) {
            None => Ok(None),
            Some(Parameter::Text(v)) => Ok(Some(v)),
            Some(other) => Err(ApiError::bad_request(format!(
                "parameter `{name}` must be a string, not {other:?}"
            ))),
        }
    }

    /// Whether the output `name` is wanted (every output is when none is named).
    pub fn wants(&self, name: &str) -> bool {
        self.outputs.is_empty() || self.outputs.iter().any(|o| o.name == name)
    }
}

impl RequestInput {
    /// The elements in row-major order, after checking that they are `shape`'s count.
    fn elements(&self) -> Result<Vec<&serde_json::Value>, ApiError> {
        fn flatten<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
            match v {
                serde_json::Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
                other => out.push(other),
            }
        }
        let mut out = Vec::new();
        flatten(&self.data, &mut out);
        if self.shape.iter().any(|&d| d < 0) {
            return Err(ApiError::bad_request(format!(
                "input `{}`: shape {:?} has a negative dimension",
                self.name, self.shape
            )));
        }
        let expected: i64 = self.shape.iter().product();
        if out.len() as i64 != expected {
            return Err(ApiError::bad_request(format!(
                "input `{}`: shape {:?} holds {expected} element(s) but data has {}",
                self.name,
                self.shape,
                out.len()
            )));
        }
        Ok(out)
    }

    /// The elements of a `BYTES` input as strings.
    pub fn strings(&self) -> Result<Vec<String>, ApiError> {
        self.expect_datatype(&["BYTES"])?;
        self.elements()?
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "input `{}`, element {i}: a BYTES element must be a string, not {v}",
                        self.name
                    ))
                })
            })
            .collect()
    }

    /// The elements of a `BYTES` input, each base64-decoded (standard alphabet, padded).
    pub fn base64_blobs(&self) -> Result<Vec<Vec<u8>>, ApiError> {
        use base64::Engine;
        self.strings()?
            .iter()
            .enumerate()
            .map(|(i, s)| {
                base64::engine::general_purpose::STANDARD
                    .decode(s.trim())
                    .map_err(|e| {
                        ApiError::bad_request(format!(
                            "input `{}`, element {i}: invalid base64: {e}",
                            self.name
                        ))
                    })
            })
            .collect()
    }

    /// The elements of a `BYTES` input as uploaded files, named `INPUT[i]`.
    pub fn uploads(&self) -> Result<Vec<Upload>, ApiError> {
        Ok(self
            .base64_blobs()?
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| Upload {
                name: format!("{}[{i}]", self.name),
                bytes,
            })
            .collect())
    }

    /// The elements of a `BYTES` or `INT64` input as strings (ids given either way).
    pub fn ids(&self) -> Result<Vec<String>, ApiError> {
        if self.datatype == "BYTES" {
            return self.strings();
        }
        self.expect_datatype(&["BYTES", "INT64"])?;
        self.elements()?
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_i64().map(|n| n.to_string()).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "input `{}`, element {i}: an INT64 element must be an integer, not {v}",
                        self.name
                    ))
                })
            })
            .collect()
    }

    fn expect_datatype(&self, allowed: &[&str]) -> Result<(), ApiError> {
        if allowed.contains(&self.datatype.as_str()) {
            return Ok(());
        }
        Err(ApiError::bad_request(format!(
            "input `{}`: datatype {} is not accepted (expected {})",
            self.name,
            self.datatype,
            allowed.join(" or ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: serde_json::Value) -> RequestInput {
        serde_json::from_value(json).expect("a request input")
    }

    #[test]
    fn nested_and_flat_data_read_the_same_and_the_shape_is_checked() {
        let flat = input(
            serde_json::json!({"name": "USER", "shape": [2, 2], "datatype": "INT64", "data": [1, 2, 3, 4]}),
        );
        let nested = input(
            serde_json::json!({"name": "USER", "shape": [2, 2], "datatype": "INT64", "data": [[1, 2], [3, 4]]}),
        );
        assert_eq!(flat.ids().unwrap(), vec!["1", "2", "3", "4"]);
        assert_eq!(nested.ids().unwrap(), flat.ids().unwrap());
        let short = input(
            serde_json::json!({"name": "USER", "shape": [3], "datatype": "INT64", "data": [1, 2]}),
        );
        let e = short.ids().unwrap_err();
        assert!(
            e.message.contains("holds 3 element(s) but data has 2"),
            "{e:?}"
        );
    }

    #[test]
    fn bad_base64_and_wrong_datatypes_name_the_input_and_element() {
        let bad = input(
            serde_json::json!({"name": "AUDIO", "shape": [2], "datatype": "BYTES", "data": ["UklGRg==", "not base64!"]}),
        );
        let e = bad.base64_blobs().unwrap_err();
        assert!(
            e.message
                .contains("input `AUDIO`, element 1: invalid base64"),
            "{e:?}"
        );
        let fp = input(
            serde_json::json!({"name": "AUDIO", "shape": [1], "datatype": "FP32", "data": [1.0]}),
        );
        let e = fp.base64_blobs().unwrap_err();
        assert!(e.message.contains("datatype FP32 is not accepted"), "{e:?}");
    }
}
