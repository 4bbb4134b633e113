//! Any bytes as a GGUF file: the reader, then everything built from a file that parses
//! (model, tokenizer), must return `Ok` or a typed error, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use powerinfer_core::Model;
use powerinfer_core::gguf::GgufFile;
use powerinfer_core::tokenizer::Tokenizer;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::from_bytes(data) else {
        return;
    };
    for (key, value) in file.metadata() {
        let _ = (key.len(), value.type_description());
    }
    for t in file.tensors() {
        let _ = file.tensor_data(t).len();
    }
    if let Ok(tok) = Tokenizer::from_gguf(&file) {
        if let Ok(ids) = tok.encode("Hello <|im_start|> wörld 123", true) {
            let _ = tok.decode(&ids);
        }
    }
    let _ = Model::from_gguf(file);
});
