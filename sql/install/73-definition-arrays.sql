-- segment install script, part 73: the checks shared by the definitions of
-- schemes (part 74) and scorecards (part 75): names and numbers taken from
-- a text array, and the shape of a definition array (docs/segmentation.md).

-- A name taken from a text array (bucket, band): the name type would
-- silently cut it at 63 bytes.
CREATE FUNCTION segment_internal._check_part_name(kind text, n text) RETURNS name
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF octet_length(n) > 63 THEN
        RAISE EXCEPTION '% name "%" is too long', kind, n
            USING ERRCODE = 'name_too_long',
                  DETAIL = 'Names are at most 63 bytes.';
    END IF;
    PERFORM segment_internal._check_name(kind, n::name);
    RETURN n::name;
END $$;

-- A numeric given as text (points, band bounds): finite, or an error saying
-- which one it is.
CREATE FUNCTION segment_internal._parse_number(v text, what text) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE x numeric;
BEGIN
    BEGIN
        x := v::numeric;
    EXCEPTION WHEN invalid_text_representation THEN
        x := NULL;
    END;
    IF x IS NULL OR x IN ('NaN'::numeric, 'Infinity'::numeric, '-Infinity'::numeric) THEN
        RAISE EXCEPTION '% is not a number', format(what, v)
            USING ERRCODE = 'invalid_text_representation',
                  HINT = 'Write a finite decimal number such as 25, -10 or 2.5.';
    END IF;
    RETURN x;
END $$;

-- Checks that a definition array (buckets, items, bands) is a non-empty
-- two-dimensional array of entries of width elements; raises 22004 / 22023.
CREATE FUNCTION segment_internal._check_entries(a text[], arg text, owner text, width int, shape text,
                                       example text, allow_empty boolean) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF a IS NULL THEN
        RAISE EXCEPTION '% of % must not be NULL', arg, owner
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF coalesce(array_ndims(a), 0) = 0 THEN
        IF allow_empty THEN
            RETURN;
        END IF;
        RAISE EXCEPTION '% has no %', owner, arg
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('Give at least one, e.g. %s.', example);
    END IF;
    IF array_ndims(a) <> 2 OR array_length(a, 2) <> width THEN
        RAISE EXCEPTION '% of % must be % of % elements', arg, owner, shape, width
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = CASE WHEN array_ndims(a) <> 2
                                THEN format('Got a %s-dimensional array.', array_ndims(a))
                                WHEN array_length(a, 2) = 1 THEN 'Each entry has 1 element.'
                                ELSE format('Each entry has %s elements.', array_length(a, 2)) END,
                  HINT = format('Pass a two-dimensional array, e.g. %s.', example);
    END IF;
END $$;

