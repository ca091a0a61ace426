/* h5attr.h — HDF5 attribute helpers shared by the site format (data/site.c) and the checkpoint
 * format (train/checkpoint.c). Not for: choosing how a format writes its strings (each format
 * keeps its own writer: site files use variable-length UTF-8, checkpoints fixed-length strings). */
#ifndef SEGQA_DATA_H5ATTR_H
#define SEGQA_DATA_H5ATTR_H

#include <hdf5.h>

/* A string attribute, fixed or variable length, as a malloc'ed NUL-terminated string; NULL when
 * absent or not a string. */
char *sq_h5_attr_read_str(hid_t loc, const char *name);

#endif
