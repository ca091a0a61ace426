/* config.c — the network config: defaults, range checks, JSON round trip and the stride plan.
 *
 * The JSON keys are those of tests/parity/segqa_ref.py (DEFAULT_CONFIG), so a checkpoint's
 * "model_config" attribute builds the same network on both sides.
 */
#include "model/model.h"

#include <math.h>
#include <string.h>

sq_model_config sq_model_config_default(void) {
    sq_model_config c;
    memset(&c, 0, sizeof c);
    c.in_channels = 2;
    c.depth = 28;
    c.height = 160;
    c.width = 160;
    c.spacing[0] = 3.9;
    c.spacing[1] = 0.59;
    c.spacing[2] = 0.59;
    c.stem_channels = 32;
    c.expansion = 2;
    c.se_ratio = 0.25;
    c.fpn_channels = 64;
    c.fpn_repeats = 3;
    c.depth_rule = SQ_DEPTH_ANISOTROPIC;
    c.image_scale = 1.0 / 255.0;
    c.bn_momentum = 0.1;
    return c;
}

const char *sq_depth_rule_name(sq_depth_rule r) {
    return r == SQ_DEPTH_ISOTROPIC ? "isotropic" : "anisotropic";
}

sq_code sq_depth_rule_parse(const char *s, sq_depth_rule *r, sq_status *st) {
    if (!strcmp(s, "anisotropic"))
        *r = SQ_DEPTH_ANISOTROPIC;
    else if (!strcmp(s, "isotropic"))
        *r = SQ_DEPTH_ISOTROPIC;
    else
        return sq_fail(st, SQ_ERR_USAGE,
                       "depth_rule: expected 'anisotropic' or 'isotropic', got '%s'", s);
    return SQ_OK;
}

sq_code sq_model_config_check(const sq_model_config *c, sq_status *st) {
#define RANGE(field, lo, hi)                                                                       \
    if (!(c->field >= (lo) && c->field <= (hi)))                                                   \
        return sq_fail(st, SQ_ERR_RANGE, "model config: " #field " must be in [%g, %g], got %g",   \
                       (double)(lo), (double)(hi), (double)c->field);
    RANGE(in_channels, 1, 64)
    RANGE(depth, 1, 4096)
    RANGE(height, 1, 4096)
    RANGE(width, 1, 4096)
    RANGE(spacing[0], 1e-6, 1e6)
    RANGE(spacing[1], 1e-6, 1e6)
    RANGE(spacing[2], 1e-6, 1e6)
    RANGE(stem_channels, 1, 4096)
    RANGE(expansion, 1, 64)
    RANGE(se_ratio, 1e-6, 1)
    RANGE(fpn_channels, 1, 4096)
    RANGE(fpn_repeats, 1, 64)
    RANGE(image_scale, 1e-12, 1e12)
    RANGE(bn_momentum, 0, 1)
#undef RANGE
    if (c->depth_rule != SQ_DEPTH_ANISOTROPIC && c->depth_rule != SQ_DEPTH_ISOTROPIC)
        return sq_fail(st, SQ_ERR_RANGE, "model config: depth_rule %d unknown", (int)c->depth_rule);
    return SQ_OK;
}

cJSON *sq_model_config_to_json(const sq_model_config *c) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "in_channels", c->in_channels);
    cJSON_AddNumberToObject(o, "depth", c->depth);
    cJSON_AddNumberToObject(o, "height", c->height);
    cJSON_AddNumberToObject(o, "width", c->width);
    cJSON *sp = cJSON_AddArrayToObject(o, "spacing");
    for (int a = 0; a < 3 && sp; a++)
        cJSON_AddItemToArray(sp, cJSON_CreateNumber(c->spacing[a]));
    cJSON_AddNumberToObject(o, "stem_channels", c->stem_channels);
    cJSON_AddNumberToObject(o, "expansion", c->expansion);
    cJSON_AddNumberToObject(o, "se_ratio", c->se_ratio);
    cJSON_AddNumberToObject(o, "fpn_channels", c->fpn_channels);
    cJSON_AddNumberToObject(o, "fpn_repeats", c->fpn_repeats);
    cJSON_AddStringToObject(o, "depth_rule", sq_depth_rule_name(c->depth_rule));
    cJSON_AddNumberToObject(o, "image_scale", c->image_scale);
    cJSON_AddNumberToObject(o, "bn_momentum", c->bn_momentum);
    return o;
}

static sq_code get_int(const cJSON *it, int *dst, const char *origin, sq_status *st) {
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble))
        return sq_fail(st, SQ_ERR_FORMAT, "%s: model config key '%s': expected an integer", origin,
                       it->string);
    *dst = (int)it->valuedouble;
    return SQ_OK;
}

static sq_code get_number(const cJSON *it, double *dst, const char *origin, sq_status *st) {
    if (!cJSON_IsNumber(it))
        return sq_fail(st, SQ_ERR_FORMAT, "%s: model config key '%s': expected a number", origin,
                       it->string);
    *dst = it->valuedouble;
    return SQ_OK;
}

sq_code sq_model_config_from_json(const cJSON *obj, sq_model_config *c, const char *origin,
                                  sq_status *st) {
    if (!cJSON_IsObject(obj))
        return sq_fail(st, SQ_ERR_FORMAT, "%s: model config: expected a JSON object", origin);
    const cJSON *it;
    cJSON_ArrayForEach(it, obj) {
        const char *k = it->string;
        if (!strcmp(k, "in_channels"))
            SQ_TRY(get_int(it, &c->in_channels, origin, st));
        else if (!strcmp(k, "depth"))
            SQ_TRY(get_int(it, &c->depth, origin, st));
        else if (!strcmp(k, "height"))
            SQ_TRY(get_int(it, &c->height, origin, st));
        else if (!strcmp(k, "width"))
            SQ_TRY(get_int(it, &c->width, origin, st));
        else if (!strcmp(k, "stem_channels"))
            SQ_TRY(get_int(it, &c->stem_channels, origin, st));
        else if (!strcmp(k, "expansion"))
            SQ_TRY(get_int(it, &c->expansion, origin, st));
        else if (!strcmp(k, "fpn_channels"))
            SQ_TRY(get_int(it, &c->fpn_channels, origin, st));
        else if (!strcmp(k, "fpn_repeats"))
            SQ_TRY(get_int(it, &c->fpn_repeats, origin, st));
        else if (!strcmp(k, "se_ratio"))
            SQ_TRY(get_number(it, &c->se_ratio, origin, st));
        else if (!strcmp(k, "image_scale"))
            SQ_TRY(get_number(it, &c->image_scale, origin, st));
        else if (!strcmp(k, "bn_momentum"))
            SQ_TRY(get_number(it, &c->bn_momentum, origin, st));
        else if (!strcmp(k, "spacing")) {
            if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != 3)
                return sq_fail(st, SQ_ERR_FORMAT,
                               "%s: model config key 'spacing': expected an array of 3 numbers",
                               origin);
            for (int a = 0; a < 3; a++) {
                const cJSON *v = cJSON_GetArrayItem(it, a);
                if (!cJSON_IsNumber(v))
                    return sq_fail(st, SQ_ERR_FORMAT,
                                   "%s: model config key 'spacing'[%d]: expected a number", origin,
                                   a);
                c->spacing[a] = v->valuedouble;
            }
        } else if (!strcmp(k, "depth_rule")) {
            if (!cJSON_IsString(it))
                return sq_fail(st, SQ_ERR_FORMAT,
                               "%s: model config key 'depth_rule': expected a string", origin);
            SQ_TRY(sq_depth_rule_parse(it->valuestring, &c->depth_rule, st));
        } else {
            return sq_fail(st, SQ_ERR_FORMAT, "%s: model config: unknown key '%s'", origin, k);
        }
    }
    return sq_model_config_check(c, st);
}

void sq_model_stride_plan(const sq_model_config *c, const int dhw[3],
                          int strides[SQ_MODEL_STEPS][3], int sizes[SQ_MODEL_STEPS][3]) {
    int size[3] = {dhw[0], dhw[1], dhw[2]};
    double sp[3] = {c->spacing[0], c->spacing[1], c->spacing[2]};
    for (int i = 0; i < SQ_MODEL_STEPS; i++) {
        double finest = fmin(sp[0], fmin(sp[1], sp[2]));
        for (int a = 0; a < 3; a++) {
            int halve = size[a] > 1;
            if (c->depth_rule == SQ_DEPTH_ANISOTROPIC)
                halve = halve && sp[a] <= 2.0 * finest * (1 + 1e-6);
            strides[i][a] = halve ? 2 : 1;
        }
        for (int a = 0; a < 3; a++) {
            if (strides[i][a] == 2) {
                size[a] = (size[a] + 1) / 2;
                sp[a] *= 2.0;
            }
            sizes[i][a] = size[a];
        }
    }
}
