/* tokenizer.h — byte-level BPE tokenizer read from a Hugging Face `tokenizer.json`
 * (Qwen2 / Qwen2.5 style; GPT-2 style files load too).
 *
 * Encoding follows the Hugging Face tokenizers pipeline with add_special_tokens=false:
 * added tokens ("added_tokens", special or not) are split out of the raw text first as
 * whole strings (leftmost-longest, honouring lstrip/rstrip/single_word/normalized), the
 * rest is normalised (NFC for Qwen2), cut by the pre-tokenizer's Split regex (read from the
 * file, run with PCRE2), mapped byte-to-unicode as in GPT-2 and merged by BPE rank
 * (streamingvlm-spec §4.5).  Decoding maps token strings back to bytes and reads them as
 * UTF-8, replacing invalid sequences with U+FFFD as HF does (String::from_utf8_lossy).
 *
 * Not for: WordPiece/Unigram models, post-processors (no BOS/EOS is ever added),
 * truncation/padding, offsets.
 *
 * Thread: any.  A loaded tokenizer is never written, so encode/decode/lookups may run
 * concurrently on one tokenizer.  A vlm_detok_stream has one owner.
 */
#ifndef VLM_TOKENIZER_H
#define VLM_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "vlm_error.h"

typedef struct vlm_tokenizer vlm_tokenizer;

/* Load a tokenizer.json.  Returns 0 and sets *out (free with vlm_tokenizer_free), or a
 * negative code with err filled, naming the file and key:
 *   VLM_EIO (cannot read), VLM_EFORMAT (not JSON, key missing or of the wrong type, a merge
 *   naming unknown tokens), VLM_EUNSUPPORTED (a model other than BPE, an unknown
 *   normalizer/pre-tokenizer/decoder), VLM_ENOMEM. */
int vlm_tokenizer_load(const char *path, vlm_tokenizer **out, char *err);

void vlm_tokenizer_free(vlm_tokenizer *tok); /* NULL is a no-op */

/* Encode len bytes of UTF-8 text into ids (add_special_tokens=false; added tokens in the
 * text are recognised).  Writes at most cap ids and sets *n_out to the full count; with
 * ids NULL it only counts.  Returns 0; VLM_EFULL when ids is not NULL and the count exceeds
 * cap (the first cap ids are written); VLM_EINVAL for invalid UTF-8 (err names the byte
 * offset, *n_out is 0); VLM_ENOMEM.  err may be NULL. */
int vlm_tokenizer_encode(const vlm_tokenizer *tok, const char *text, size_t len, int32_t *ids,
                         int64_t cap, int64_t *n_out, char *err);

/* Flags for vlm_tokenizer_decode and vlm_detok_stream_new. */
enum {
    VLM_DECODE_SKIP_SPECIAL = 1, /* drop added tokens marked "special": true (HF
                                    skip_special_tokens) */
    VLM_DECODE_RAW = 2,          /* decode only: the raw bytes, invalid UTF-8 left as is */
};

/* Decode n ids into buf (cap bytes).  Ids that name no token (e.g. the model's padded
 * vocabulary rows, negative ids) decode to nothing, as in HF.  *len_out is always set to the
 * full length in bytes (without the terminating NUL, which is written when it fits).
 * Returns 0, or VLM_EFULL when len + 1 > cap (buf then holds a truncated prefix). */
int vlm_tokenizer_decode(const vlm_tokenizer *tok, const int32_t *ids, int64_t n,
                         unsigned flags, char *buf, size_t cap, size_t *len_out);

/* The id of a token by its name as written in tokenizer.json ("<|im_end|>", "Ġworld"):
 * added tokens first, then the BPE vocabulary.  Returns the id, or VLM_ENOTFOUND. */
int32_t vlm_tokenizer_token_to_id(const vlm_tokenizer *tok, const char *name);

/* The name of id as written in tokenizer.json, NUL-terminated and owned by the tokenizer;
 * *len (may be NULL) gets its length.  NULL when id names no token. */
const char *vlm_tokenizer_id_to_token(const vlm_tokenizer *tok, int32_t id, size_t *len);

/* 1 if id is an added token marked "special": true, else 0. */
int vlm_tokenizer_is_special(const vlm_tokenizer *tok, int32_t id);

/* Size of the id space: the highest id (BPE or added) + 1; 151665 for Qwen2.5. */
int64_t vlm_tokenizer_vocab_size(const vlm_tokenizer *tok);

/* Streaming decoder: push generated ids one at a time and get back only complete UTF-8
 * text.  A multi-byte character split across tokens is held back until it completes;
 * invalid sequences become U+FFFD exactly where a whole decode would put them, so the
 * concatenation of every piece plus the flush equals vlm_tokenizer_decode of all ids.
 * Allocates once in _new; push and flush never allocate.  Borrows tok, which must outlive
 * the stream. */
typedef struct vlm_detok_stream vlm_detok_stream;

/* flags: VLM_DECODE_SKIP_SPECIAL or 0 (VLM_DECODE_RAW is ignored). Returns 0 or
 * VLM_ENOMEM. */
int vlm_detok_stream_new(const vlm_tokenizer *tok, unsigned flags, vlm_detok_stream **out);
void vlm_detok_stream_free(vlm_detok_stream *s); /* NULL is a no-op */

/* Push one id; *text and *len receive the complete text it releases (possibly empty), valid
 * until the next call on s.  Always returns 0 (ids that name no token release nothing). */
int vlm_detok_stream_push(vlm_detok_stream *s, int32_t id, const char **text, size_t *len);

/* End of the sequence: releases a held-back incomplete character as U+FFFD and resets the
 * stream for a new sequence.  Returns 0. */
int vlm_detok_stream_flush(vlm_detok_stream *s, const char **text, size_t *len);

/* Drop any held-back bytes without emitting them. */
void vlm_detok_stream_reset(vlm_detok_stream *s);

#endif
