// A C API over SentencePiece (Debian: libsentencepiece-dev), whose C++ classes
// Swift cannot import directly. Every function that can fail returns an error
// message (to be freed with spm_free_string) or NULL on success.
#ifndef CSENTENCEPIECE_H
#define CSENTENCEPIECE_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct spm_processor spm_processor;

/// Trains a model. keys/values are SentencePieceTrainer flags without "--".
char *spm_train(const char *const *keys, const char *const *values, size_t count);

/// Loads a model file; on failure *error is set and NULL is returned.
spm_processor *spm_load(const char *path, char **error);
void spm_free(spm_processor *processor);
void spm_free_string(char *string);

/// Encodes UTF-8 text. *ids is malloc'ed (free with spm_free_ids).
char *spm_encode(const spm_processor *processor, const char *text, size_t length,
                 int32_t **ids, size_t *count);
void spm_free_ids(int32_t *ids);
/// Decodes ids to UTF-8 text (malloc'ed, free with spm_free_string).
char *spm_decode(const spm_processor *processor, const int32_t *ids, size_t count,
                 char **text);

int32_t spm_vocab_size(const spm_processor *processor);
/// The piece of an id; valid while the processor lives. NULL when out of range.
const char *spm_id_to_piece(const spm_processor *processor, int32_t id, size_t *length);
float spm_score(const spm_processor *processor, int32_t id);
/// 0 normal (or user defined), 1 unknown, 2 control, 4 unused, 5 byte.
int32_t spm_piece_type(const spm_processor *processor, int32_t id);
int32_t spm_bos_id(const spm_processor *processor);
int32_t spm_eos_id(const spm_processor *processor);
int32_t spm_unk_id(const spm_processor *processor);
int32_t spm_pad_id(const spm_processor *processor);

#ifdef __cplusplus
}
#endif
#endif
