// extern "C" wrappers over SentencePieceTrainer and SentencePieceProcessor.
#include "CSentencePiece.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

struct spm_processor {
    sentencepiece::SentencePieceProcessor impl;
};

static char *copy_string(const std::string &s) {
    char *out = static_cast<char *>(std::malloc(s.size() + 1));
    if (out == nullptr) return nullptr;
    std::memcpy(out, s.data(), s.size());
    out[s.size()] = '\0';
    return out;
}

static char *status_error(const sentencepiece::util::Status &status) {
    if (status.ok()) return nullptr;
    return copy_string(status.ToString());
}

extern "C" char *spm_train(const char *const *keys, const char *const *values, size_t count) {
    std::unordered_map<std::string, std::string> kwargs;
    for (size_t i = 0; i < count; i++) kwargs[keys[i]] = values[i];
    try {
        return status_error(sentencepiece::SentencePieceTrainer::Train(kwargs));
    } catch (const std::exception &e) {
        return copy_string(e.what());
    }
}

extern "C" spm_processor *spm_load(const char *path, char **error) {
    auto *processor = new spm_processor();
    auto status = processor->impl.Load(path);
    if (!status.ok()) {
        *error = status_error(status);
        delete processor;
        return nullptr;
    }
    *error = nullptr;
    return processor;
}

extern "C" void spm_free(spm_processor *processor) { delete processor; }
extern "C" void spm_free_string(char *string) { std::free(string); }
extern "C" void spm_free_ids(int32_t *ids) { std::free(ids); }

extern "C" char *spm_encode(const spm_processor *processor, const char *text, size_t length,
                            int32_t **ids, size_t *count) {
    std::vector<int> out;
    auto status = processor->impl.Encode(std::string(text, length), &out);
    if (!status.ok()) return status_error(status);
    *count = out.size();
    *ids = static_cast<int32_t *>(std::malloc(sizeof(int32_t) * (out.empty() ? 1 : out.size())));
    for (size_t i = 0; i < out.size(); i++) (*ids)[i] = out[i];
    return nullptr;
}

extern "C" char *spm_decode(const spm_processor *processor, const int32_t *ids, size_t count,
                            char **text) {
    std::vector<int> in(ids, ids + count);
    std::string out;
    auto status = processor->impl.Decode(in, &out);
    if (!status.ok()) return status_error(status);
    *text = copy_string(out);
    return nullptr;
}

extern "C" int32_t spm_vocab_size(const spm_processor *p) { return p->impl.GetPieceSize(); }

extern "C" const char *spm_id_to_piece(const spm_processor *p, int32_t id, size_t *length) {
    if (id < 0 || id >= p->impl.GetPieceSize()) return nullptr;
    const std::string &piece = p->impl.IdToPiece(id);
    *length = piece.size();
    return piece.data();
}

extern "C" float spm_score(const spm_processor *p, int32_t id) { return p->impl.GetScore(id); }

extern "C" int32_t spm_piece_type(const spm_processor *p, int32_t id) {
    if (p->impl.IsUnknown(id)) return 1;
    if (p->impl.IsControl(id)) return 2;
    if (p->impl.IsUnused(id)) return 4;
    if (p->impl.IsByte(id)) return 5;
    return 0;
}

extern "C" int32_t spm_bos_id(const spm_processor *p) { return p->impl.bos_id(); }
extern "C" int32_t spm_eos_id(const spm_processor *p) { return p->impl.eos_id(); }
extern "C" int32_t spm_unk_id(const spm_processor *p) { return p->impl.unk_id(); }
extern "C" int32_t spm_pad_id(const spm_processor *p) { return p->impl.pad_id(); }
