//! GGUF reader/writer: round trips, hostile inputs, and the real SmolLM2 model file.

use powerinfer_assets as assets;
use powerinfer_core::gguf::{
    GgufError, GgufFile, GgufWriter, MAX_HEADER_MEMORY, OptionalKey, Value, ValueType,
};
use powerinfer_kernels::WType;
use proptest::prelude::*;

/// Deterministic bytes for tensor data.
fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// One value of every scalar type, plus strings and (nested, empty) arrays.
fn all_values() -> Vec<(&'static str, Value)> {
    vec![
        ("t.u8", Value::U8(200)),
        ("t.i8", Value::I8(-100)),
        ("t.u16", Value::U16(60000)),
        ("t.i16", Value::I16(-30000)),
        ("t.u32", Value::U32(4_000_000_000)),
        ("t.i32", Value::I32(-2_000_000_000)),
        ("t.f32", Value::F32(1.5e-5)),
        ("t.bool_true", Value::Bool(true)),
        ("t.bool_false", Value::Bool(false)),
        ("t.string", Value::from("héllo ▁ 世界")),
        ("t.empty_string", Value::from("")),
        ("t.u64", Value::U64(u64::MAX - 1)),
        ("t.i64", Value::I64(i64::MIN + 1)),
        ("t.f64", Value::F64(-2.5e300)),
        ("t.str_array", Value::string_array(["a", "Ġb", ""])),
        (
            "t.f32_array",
            Value::array(ValueType::F32, [0.5f32, -1.0, 3.25]),
        ),
        ("t.i32_array", Value::array(ValueType::I32, [1i32, -2, 3])),
        ("t.u8_array", Value::array(ValueType::U8, [1u8, 2, 255])),
        (
            "t.empty_array",
            Value::array(ValueType::U64, Vec::<u64>::new()),
        ),
        (
            "t.nested",
            Value::Array {
                elem: ValueType::Array,
                items: vec![
                    Value::array(ValueType::I16, [1i16, -1]),
                    Value::string_array(["x"]),
                    Value::array(ValueType::Bool, [true, false]),
                ],
            },
        ),
    ]
}

/// A small valid file: every value type and one tensor of each WType.
fn sample_writer() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.add("general.architecture", "llama");
    for (k, v) in all_values() {
        w.add(k, v);
    }
    for (i, t) in WType::ALL.into_iter().enumerate() {
        // 64 columns, or one 256-value super-block for the K-quants.
        let cols = t.block_size().max(64);
        let dims = [cols as u64, 3];
        let n = t.matrix_bytes(3, cols).unwrap();
        w.add_tensor(
            &format!("tensor.{}", t.name()),
            &dims,
            t,
            pattern(n, i as u8),
        )
        .unwrap();
    }
    w
}

fn sample() -> Vec<u8> {
    sample_writer().to_bytes().unwrap()
}

/// A small file whose fields the hostile tests patch.
fn small_writer() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.add("general.alignment", 32u32);
    w.add("k.str", "abc");
    w.add("k.arr", Value::array(ValueType::U32, [1u32, 2, 3]));
    w.add("k.flag", true);
    w.add_tensor("a.weight", &[8, 2], WType::F32, pattern(64, 1))
        .unwrap();
    w.add_tensor("b.weight", &[32, 1], WType::Q8_0, pattern(34, 2))
        .unwrap();
    w
}

fn small() -> Vec<u8> {
    small_writer().to_bytes().unwrap()
}

/// Index just past the first occurrence of `needle` (a key or tensor name) in `bytes`.
fn after(bytes: &[u8], needle: &str) -> usize {
    let n = needle.as_bytes();
    bytes
        .windows(n.len())
        .position(|w| w == n)
        .expect("needle present")
        + n.len()
}

fn put_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn read(bytes: &[u8]) -> Result<GgufFile, GgufError> {
    GgufFile::from_bytes(bytes)
}

#[test]
fn round_trip_every_value_type_and_weight_type() {
    let bytes = sample();
    let f = read(&bytes).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), 32);
    assert_eq!(f.name(), "<memory>");
    // Metadata comes back complete and in order.
    let keys: Vec<&str> = f.metadata().iter().map(|(k, _)| k.as_str()).collect();
    let mut expected = vec!["general.architecture"];
    expected.extend(all_values().iter().map(|(k, _)| *k));
    assert_eq!(keys, expected);
    for (k, v) in all_values() {
        assert_eq!(f.get(k), Some(&v), "{k}");
    }
    assert_eq!(f.architecture().unwrap(), "llama");
    // Tensors: type, shape, size and bytes survive; data is aligned in file and memory.
    assert_eq!(f.tensors().len(), WType::ALL.len());
    for (i, t) in WType::ALL.into_iter().enumerate() {
        let info = f.tensor(&format!("tensor.{}", t.name())).unwrap();
        assert_eq!(info.wtype, t);
        let cols = t.block_size().max(64);
        assert_eq!(info.dims, vec![cols as u64, 3]);
        assert_eq!(
            (info.cols(), info.rows(), info.n_elements()),
            (cols as u64, 3, 3 * cols as u64)
        );
        let n = t.matrix_bytes(3, cols).unwrap();
        assert_eq!(info.n_bytes, n as u64);
        assert_eq!(info.offset % 32, 0);
        assert_eq!((f.data_start() as u64 + info.offset) % 32, 0);
        let data = f.tensor_data(info);
        assert_eq!(data, pattern(n, i as u8).as_slice());
        assert_eq!(
            data.as_ptr() as usize % 32,
            0,
            "tensor data aligned in memory"
        );
    }
    // The writer ends the file exactly at the end of the last tensor's data.
    let last = f.tensors().last().unwrap();
    assert_eq!(
        f.data_start() as u64 + last.offset + last.n_bytes,
        bytes.len() as u64
    );
}

#[test]
fn custom_alignment_is_honoured() {
    for align in [1u64, 8, 64, 256] {
        let mut w = small_writer();
        w.add("general.alignment", Value::U64(align));
        let bytes = w.to_bytes().unwrap();
        let f = read(&bytes).unwrap();
        assert_eq!(f.alignment(), align);
        assert_eq!(f.data_start() as u64 % align, 0);
        for t in f.tensors() {
            assert_eq!(t.offset % align, 0, "{} at align {align}", t.name);
        }
        let b = f.tensor("b.weight").unwrap();
        assert_eq!(f.tensor_data(b), pattern(34, 2).as_slice());
    }
}

#[test]
fn file_without_tensors_reads() {
    let mut w = GgufWriter::new();
    w.add("general.architecture", "none");
    let f = read(&w.to_bytes().unwrap()).unwrap();
    assert!(f.tensors().is_empty());
    assert_eq!(f.get_str("general.architecture").unwrap(), "none");
}

#[test]
fn version_2_reads_like_version_3() {
    let mut bytes = small();
    put_u32(&mut bytes, 4, 2);
    let f = read(&bytes).unwrap();
    assert_eq!(f.version(), 2);
    assert_eq!(f.tensors().len(), 2);
}

#[test]
fn open_reads_a_file_on_disk_and_names_it_in_errors() {
    let dir = std::env::temp_dir().join(format!("gguf-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("small.gguf");
    small_writer().write(&path).unwrap();
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.name(), path.display().to_string());
    let err = f.get_u32("no.such.key").unwrap_err();
    assert!(err.to_string().contains("small.gguf"), "{err}");
    let missing = GgufFile::open(dir.join("absent.gguf")).unwrap_err();
    assert!(matches!(missing, GgufError::Io { .. }), "{missing:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn typed_getters_convert_integers_that_fit() {
    let mut w = GgufWriter::new();
    w.add("u64.small", Value::U64(30));
    w.add("i32.pos", Value::I32(1536));
    w.add("i32.neg", Value::I32(-1));
    w.add("u64.big", Value::U64(1 << 40));
    w.add("f64", Value::F64(0.25));
    w.add("s", "text");
    w.add("ints", Value::array(ValueType::U8, [0u8, 3, 200]));
    w.add("big_ints", Value::array(ValueType::U64, [u64::MAX]));
    let f = read(&w.to_bytes().unwrap()).unwrap();
    assert_eq!(f.get_u32("u64.small").unwrap(), 30);
    assert_eq!(f.get_u32("i32.pos").unwrap(), 1536);
    assert_eq!(f.get_usize("i32.pos").unwrap(), 1536);
    assert_eq!(f.get_i64("i32.neg").unwrap(), -1);
    assert_eq!(f.get_u64("u64.big").unwrap(), 1 << 40);
    assert_eq!(f.get_f32("f64").unwrap(), 0.25);
    assert_eq!(f.get_i32_array("ints").unwrap(), vec![0, 3, 200]);
    assert!(matches!(
        f.get_u32("i32.neg"),
        Err(GgufError::WrongType {
            expected: "u32",
            ..
        })
    ));
    assert!(matches!(
        f.get_u32("u64.big"),
        Err(GgufError::WrongType { .. })
    ));
    assert!(matches!(
        f.get_i32_array("big_ints"),
        Err(GgufError::WrongType { .. })
    ));
    let e = f.get_u32("s").unwrap_err();
    assert!(
        matches!(&e, GgufError::WrongType { key, found, .. } if key == "s" && found == "string"),
        "{e:?}"
    );
    assert!(matches!(
        f.get_str_array("ints"),
        Err(GgufError::WrongType { .. })
    ));
    assert!(matches!(
        f.get_f32_array("ints"),
        Err(GgufError::WrongType { .. })
    ));
    assert!(matches!(f.get_bool("s"), Err(GgufError::WrongType { .. })));
    assert!(matches!(
        f.get_str("absent"),
        Err(GgufError::MissingKey { ref key, .. }) if key == "absent"
    ));
    // `optional` turns only a missing key into None.
    assert_eq!(f.get_u32("absent").optional().unwrap(), None);
    assert_eq!(f.get_u32("i32.pos").optional().unwrap(), Some(1536));
    assert!(f.get_u32("s").optional().is_err());
    assert!(matches!(
        f.require_tensor("x.weight"),
        Err(GgufError::MissingTensor { ref tensor, .. }) if tensor == "x.weight"
    ));
}

#[test]
fn powerinfer_transposed_down_projection_reads_as_a_tensor() {
    let mut w = GgufWriter::new();
    w.add("general.architecture", "llama");
    // 1536 neurons × 576 columns: each neuron's down weights are one contiguous row.
    let n = WType::Q4_0.matrix_bytes(1536, 576).unwrap();
    w.add_tensor(
        "blk.0.ffn_down_t.weight",
        &[576, 1536],
        WType::Q4_0,
        pattern(n, 7),
    )
    .unwrap();
    let f = read(&w.to_bytes().unwrap()).unwrap();
    let t = f.require_tensor("blk.0.ffn_down_t.weight").unwrap();
    assert_eq!((t.rows(), t.cols(), t.wtype), (1536, 576, WType::Q4_0));
    assert_eq!(f.tensor_data(t).len(), n);
}

#[test]
fn writer_rejects_inconsistent_input() {
    let mut w = GgufWriter::new();
    let short = w
        .add_tensor("x", &[32, 2], WType::F32, vec![0; 10])
        .unwrap_err();
    assert!(
        matches!(short, GgufError::BadTensorData { .. }),
        "{short:?}"
    );
    let ragged = w
        .add_tensor("x", &[33], WType::Q8_0, vec![0; 34])
        .unwrap_err();
    assert!(
        matches!(ragged, GgufError::BadTensorData { .. }),
        "{ragged:?}"
    );
    let zero = w.add_tensor("x", &[0], WType::F32, vec![]).unwrap_err();
    assert!(matches!(zero, GgufError::BadTensorData { .. }), "{zero:?}");
    w.add_tensor("x", &[1], WType::F32, vec![0; 4]).unwrap();
    let dup = w.add_tensor("x", &[1], WType::F32, vec![0; 4]).unwrap_err();
    assert!(matches!(dup, GgufError::DuplicateTensor { .. }), "{dup:?}");
    let mut bad_align = GgufWriter::new();
    bad_align.add("general.alignment", 24u32);
    assert!(matches!(
        bad_align.to_bytes(),
        Err(GgufError::BadAlignment { .. })
    ));
    let mut mixed = GgufWriter::new();
    mixed.add(
        "mixed",
        Value::Array {
            elem: ValueType::U8,
            items: vec![Value::U8(1), Value::I8(1)],
        },
    );
    assert!(matches!(mixed.to_bytes(), Err(GgufError::BadValue { .. })));
}

#[test]
fn every_truncation_is_an_error() {
    for bytes in [small(), sample()] {
        for len in 0..bytes.len() {
            assert!(
                read(&bytes[..len]).is_err(),
                "prefix of {len} bytes accepted"
            );
        }
        assert!(read(&bytes).is_ok());
    }
}

#[test]
fn empty_file_and_wrong_magic() {
    assert!(matches!(read(&[]), Err(GgufError::BadMagic { ref found, .. }) if found.is_empty()));
    let mut bytes = small();
    bytes[..4].copy_from_slice(b"GGML");
    let e = read(&bytes).unwrap_err();
    assert!(
        matches!(&e, GgufError::BadMagic { found, .. } if found == b"GGML"),
        "{e:?}"
    );
    assert!(e.to_string().contains("<memory>"));
}

#[test]
fn versions_other_than_2_and_3_are_rejected() {
    for v in [0, 1, 4, u32::MAX] {
        let mut bytes = small();
        put_u32(&mut bytes, 4, v);
        assert!(matches!(
            read(&bytes),
            Err(GgufError::UnsupportedVersion { version, .. }) if version == v
        ));
    }
}

#[test]
fn tensor_past_the_end_is_rejected() {
    let mut bytes = small();
    // b.weight's info: name, n_dims (4), dims (2 × 8), type (4), offset (8).
    let at = after(&bytes, "b.weight") + 4 + 16 + 4;
    put_u64(&mut bytes, at, 1 << 20);
    let e = read(&bytes).unwrap_err();
    assert!(
        matches!(&e, GgufError::TensorOutOfBounds { tensor, offset, .. } if tensor == "b.weight" && *offset == 1 << 20),
        "{e:?}"
    );
    // An offset near u64::MAX must not wrap around.
    put_u64(&mut bytes, at, u64::MAX - 31);
    assert!(matches!(
        read(&bytes),
        Err(GgufError::TensorOutOfBounds { .. })
    ));
}

#[test]
fn misaligned_tensor_offset_is_rejected() {
    let mut bytes = small();
    let at = after(&bytes, "b.weight") + 4 + 16 + 4;
    put_u64(&mut bytes, at, 4);
    assert!(matches!(
        read(&bytes),
        Err(GgufError::MisalignedTensor {
            offset: 4,
            alignment: 32,
            ..
        })
    ));
}

#[test]
fn overflowing_shape_is_rejected() {
    let mut bytes = small();
    let at = after(&bytes, "a.weight") + 4;
    put_u64(&mut bytes, at, 1 << 40);
    put_u64(&mut bytes, at + 8, 1 << 40);
    let e = read(&bytes).unwrap_err();
    assert!(
        matches!(&e, GgufError::SizeOverflow { tensor, dims, .. } if tensor == "a.weight" && dims == &[1 << 40, 1 << 40]),
        "{e:?}"
    );
}

#[test]
fn bad_shapes_are_rejected() {
    // Zero dimension.
    let mut bytes = small();
    let at = after(&bytes, "a.weight") + 4;
    put_u64(&mut bytes, at + 8, 0);
    assert!(matches!(read(&bytes), Err(GgufError::BadShape { .. })));
    // Too many dimensions.
    let mut bytes = small();
    let at = after(&bytes, "a.weight");
    put_u32(&mut bytes, at, 5);
    assert!(matches!(read(&bytes), Err(GgufError::BadShape { .. })));
    // Columns not a whole number of Q8_0 blocks.
    let mut bytes = small();
    let at = after(&bytes, "b.weight") + 4;
    put_u64(&mut bytes, at, 33);
    let e = read(&bytes).unwrap_err();
    assert!(
        matches!(&e, GgufError::BadShape { tensor, .. } if tensor == "b.weight"),
        "{e:?}"
    );
}

#[test]
fn unknown_tensor_type_is_rejected() {
    let mut bytes = small();
    let at = after(&bytes, "a.weight") + 4 + 16;
    put_u32(&mut bytes, at, 99);
    let e = read(&bytes).unwrap_err();
    assert!(
        matches!(&e, GgufError::UnknownType { tensor, type_id: 99, .. } if tensor == "a.weight"),
        "{e:?}"
    );
}

#[test]
fn huge_lengths_and_counts_are_errors_not_allocations() {
    // A string length of 2^60.
    let mut bytes = small();
    let at = after(&bytes, "k.str") + 4;
    put_u64(&mut bytes, at, 1 << 60);
    assert!(matches!(read(&bytes), Err(GgufError::Truncated { .. })));
    // An array count of 2^60.
    let mut bytes = small();
    let at = after(&bytes, "k.arr") + 4 + 4;
    put_u64(&mut bytes, at, 1 << 60);
    assert!(matches!(read(&bytes), Err(GgufError::Truncated { .. })));
    // Tensor and metadata counts of 2^60.
    for field in [8, 16] {
        let mut bytes = small();
        put_u64(&mut bytes, field, 1 << 60);
        assert!(
            matches!(read(&bytes), Err(GgufError::Truncated { .. })),
            "field {field}"
        );
    }
    // A key length of u64::MAX.
    let mut bytes = small();
    put_u64(&mut bytes, 24, u64::MAX);
    assert!(matches!(read(&bytes), Err(GgufError::Truncated { .. })));
}

/// Regression: an array count was bounded by the bytes left at one byte per element,
/// but each parsed element takes a 32-byte `Value`, so a file of n bytes could ask for
/// 32·n bytes of memory. The parsed header now has a budget, charged before allocating.
#[test]
fn a_header_that_would_outgrow_memory_is_refused_before_allocating() {
    let n = (MAX_HEADER_MEMORY / std::mem::size_of::<Value>() as u64) + 1;
    let mut w = GgufWriter::new();
    w.add("k.small", 1u32);
    let mut bytes = w.to_bytes().unwrap();
    // Append one u8 array of n elements (each byte a valid value) by hand: the writer
    // would build the 32·n-byte Value list this test is about.
    put_u64(&mut bytes, 16, 2);
    // Drop the padding after the first entry (type and value, 4 bytes each).
    bytes.truncate(after(&bytes, "k.small") + 8);
    let key = "k.big";
    bytes.extend_from_slice(&(key.len() as u64).to_le_bytes());
    bytes.extend_from_slice(key.as_bytes());
    bytes.extend_from_slice(&9u32.to_le_bytes()); // array
    bytes.extend_from_slice(&0u32.to_le_bytes()); // of u8
    bytes.extend_from_slice(&n.to_le_bytes());
    bytes.resize(bytes.len() + n as usize, 7);
    match read(&bytes) {
        Err(e @ GgufError::HeaderTooLarge { .. }) => {
            assert!(e.to_string().contains("\"k.big\""), "{e}")
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn duplicate_names_are_rejected() {
    let mut bytes = small();
    let at = after(&bytes, "b.weight") - "b.weight".len();
    bytes[at] = b'a';
    let e = read(&bytes).unwrap_err();
    assert!(
        matches!(&e, GgufError::DuplicateTensor { tensor, .. } if tensor == "a.weight"),
        "{e:?}"
    );
    let mut bytes = small();
    let at = after(&bytes, "k.arr") - 3;
    bytes[at..at + 3].copy_from_slice(b"str");
    let e = read(&bytes).unwrap_err();
    assert!(
        matches!(&e, GgufError::DuplicateKey { key, .. } if key == "k.str"),
        "{e:?}"
    );
}

#[test]
fn bad_alignment_is_rejected() {
    for bad in [0u32, 3, 48] {
        let mut bytes = small();
        let at = after(&bytes, "general.alignment") + 4;
        put_u32(&mut bytes, at, bad);
        assert!(matches!(
            read(&bytes),
            Err(GgufError::BadAlignment { alignment, .. }) if alignment == u64::from(bad)
        ));
    }
}

#[test]
fn malformed_values_are_rejected() {
    // Unknown value type.
    let mut bytes = small();
    let at = after(&bytes, "k.flag");
    put_u32(&mut bytes, at, 13);
    assert!(matches!(
        read(&bytes),
        Err(GgufError::UnknownValueType { type_id: 13, .. })
    ));
    // A bool byte of 2.
    let mut bytes = small();
    let at = after(&bytes, "k.flag") + 4;
    bytes[at] = 2;
    assert!(matches!(read(&bytes), Err(GgufError::BadValue { .. })));
    // Invalid UTF-8 in a string value.
    let mut bytes = small();
    let at = after(&bytes, "k.str") + 4 + 8;
    bytes[at] = 0xff;
    assert!(matches!(read(&bytes), Err(GgufError::Utf8 { .. })));
    // Arrays nested too deep.
    let mut v = Value::array(ValueType::U8, [1u8]);
    for _ in 0..20 {
        v = Value::Array {
            elem: ValueType::Array,
            items: vec![v],
        };
    }
    let mut w = GgufWriter::new();
    w.add("deep", v);
    assert!(matches!(
        read(&w.to_bytes().unwrap()),
        Err(GgufError::NestingTooDeep { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random byte edits of a valid file are read or rejected, never a panic.
    #[test]
    fn random_mutations_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = small();
        for (i, b) in edits {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        if let Ok(f) = read(&bytes) {
            // A file that reads must yield in-bounds tensor data.
            for t in f.tensors() {
                prop_assert_eq!(f.tensor_data(t).len() as u64, t.n_bytes);
            }
        }
    }
}

#[test]
fn real_smollm2_model_has_the_expected_layout() {
    assets::ensure_assets().unwrap();
    let f = GgufFile::open(assets::default_model_path()).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.architecture().unwrap(), "llama");
    assert_eq!(f.get_u32("llama.block_count").unwrap(), 30);
    assert_eq!(f.get_u32("llama.embedding_length").unwrap(), 576);
    assert_eq!(f.get_u32("llama.feed_forward_length").unwrap(), 1536);
    assert_eq!(f.get_u32("llama.attention.head_count").unwrap(), 9);
    assert_eq!(f.get_u32("llama.attention.head_count_kv").unwrap(), 3);
    assert_eq!(f.get_f32("llama.rope.freq_base").unwrap(), 100000.0);
    assert_eq!(f.tensors().len(), 272);

    let embd = f.require_tensor("token_embd.weight").unwrap();
    assert_eq!(
        (embd.wtype, embd.dims.as_slice()),
        (WType::Q8_0, &[576, 49152][..])
    );
    let gate = f.require_tensor("blk.0.ffn_gate.weight").unwrap();
    assert_eq!(
        (gate.wtype, gate.dims.as_slice()),
        (WType::Q4_1, &[576, 1536][..])
    );
    let down = f.require_tensor("blk.29.ffn_down.weight").unwrap();
    assert_eq!(
        (down.wtype, down.dims.as_slice()),
        (WType::Q4_1, &[1536, 576][..])
    );
    assert_eq!(f.tensor_data(down).len(), 576 * (1536 / 32) * 20);
    // Output projection is tied to the embedding.
    assert!(f.tensor("output.weight").is_none());

    assert_eq!(f.get_str("tokenizer.ggml.model").unwrap(), "gpt2");
    assert_eq!(f.get_str("tokenizer.ggml.pre").unwrap(), "smollm");
    assert_eq!(
        f.get_str_array("tokenizer.ggml.merges").unwrap().len(),
        48_900
    );
    assert_eq!(
        f.get_str_array("tokenizer.ggml.tokens").unwrap().len(),
        49_152
    );
    assert_eq!(
        f.get_i32_array("tokenizer.ggml.token_type").unwrap().len(),
        49_152
    );
}
