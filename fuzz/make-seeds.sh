#!/bin/sh
# Writes seed corpora for the fuzz targets into DIR (default
# /tmp/r1c-fuzz-seeds): DIR/fuzz_safetensors and DIR/fuzz_hf_config.
# Small hand-made files plus the committed fixtures. Run from the repo root.
set -e
export LC_ALL=C
DIR=${1:-/tmp/r1c-fuzz-seeds}
ST=$DIR/fuzz_safetensors
HF=$DIR/fuzz_hf_config
mkdir -p "$ST" "$HF"

# st NAME HEADER DATA(printf format): u64 LE header length, header, data
st() {
    n=${#2}
    {
        printf "$(printf '\\%03o\\%03o\\%03o' $((n & 255)) $(((n >> 8) & 255)) $(((n >> 16) & 255)))"
        printf '\000\000\000\000\000'
        printf '%s' "$2"
        printf "$3"
    } > "$ST/$1"
}
st empty.st '{}' ''
st meta.st '{"__metadata__":{"format":"pt"}}' ''
st f32.st '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}' '\000\000\200\077\000\000\000\300'
st mixed.st '{"__metadata__":{"k":"v"},"b":{"dtype":"BF16","shape":[2,1],"data_offsets":[0,4]},"h":{"dtype":"F16","shape":[2],"data_offsets":[4,8]},"i":{"dtype":"I32","shape":[],"data_offsets":[8,12]},"z":{"dtype":"F32","shape":[0,3],"data_offsets":[12,12]}}' \
    '\200\077\300\177\000\074\001\000\007\000\000\000'
st u8.st '{"x":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},"y":{"dtype":"BOOL","shape":[1],"data_offsets":[3,4]},"w":{"dtype":"F64","shape":[1],"data_offsets":[4,12]}}' \
    '\001\002\003\001\000\000\000\000\000\000\360\077'
st bad-gap.st '{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}' '\000\000\000\000\000\000\200\077'
for m in tests/fixtures/models/*/; do
    name=$(basename "$m")
    [ -f "$m/model.safetensors" ] && cp "$m/model.safetensors" "$ST/fixture-$name.st"
    [ -f "$m/config.json" ] && cp "$m/config.json" "$HF/fixture-$name.json"
done
cp fuzz/corpus/fuzz_safetensors/* "$ST/" 2>/dev/null || true
cp fuzz/corpus/fuzz_hf_config/* "$HF/" 2>/dev/null || true

printf '%s' '{"model_type":"qwen2","vocab_size":100,"hidden_size":8,"num_hidden_layers":1,"num_attention_heads":2,"intermediate_size":4}' > "$HF/min-qwen2.json"
printf '%s' '{"architectures":["LlamaForCausalLM"],"vocab_size":100,"hidden_size":16,"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":6,"intermediate_size":4,"rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":64},"bos_token_id":1,"eos_token_id":[2,3,99,100,-1]}' > "$HF/llama3-scaling.json"
printf '%s' '{"architectures":["Qwen3ForCausalLM"],"vocab_size":50,"hidden_size":8,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1,"head_dim":4,"intermediate_size":4,"rope_parameters":{"rope_type":"default","rope_theta":1e6},"tie_word_embeddings":true,"use_sliding_window":false,"eos_token_id":7}' > "$HF/qwen3-rp.json"
echo "seeds in $DIR: $(ls "$ST" | wc -l) safetensors, $(ls "$HF" | wc -l) configs"
