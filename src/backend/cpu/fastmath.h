/* exp for float that the compiler can vectorise: glibc's expf is a scalar
 * call (its SIMD variants are only declared under -ffast-math), and the
 * softmaxes, SiLU and log-softmax over the vocabulary spend most of their
 * time in it. Range reduction x = k ln2 + r with ln2 split in two (exact
 * k ln2_hi), a degree-6 minimax polynomial for e^r on [-ln2/2, ln2/2], and
 * 2^k built in the exponent bits. Max error ~2 ulp on [-87, 88]; inputs
 * below -87.3 give ~0 (never inf or NaN for finite x); NaN propagates. */
#ifndef R1C_BACKEND_CPU_FASTMATH_H
#define R1C_BACKEND_CPU_FASTMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float fast_expf(float x) {
    x = x < -87.3f ? -87.3f : x > 88.7f ? 88.7f : x;
    float k = rintf(x * 1.44269504088896341f);
    float r = x - k * 0.693359375f;
    r = r + k * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t e = ((int32_t)k + 127) << 23;
    float s;
    memcpy(&s, &e, 4);
    return p * s;
}

#endif
