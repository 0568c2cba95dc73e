-- The slot algorithm of rules/src/scheduling.rs (available_slots) written in PL/pgSQL, taking
-- the same input as careplane.available_slots and answering the same jsonb: the baseline of
-- bench/slots. Wall-clock times resolve with `at time zone`, which agrees with the rules except
-- inside a daylight-saving transition (the benchmark's practitioner is in Africa/Lagos: none).
-- It leaves out one step the Rust takes for every candidate: re-deriving the day's working
-- hours to check the candidate lies inside them (it cannot fail for a candidate generated
-- inside them), so the baseline does less work than the extension.
create schema if not exists bench;

create function bench.available_slots_plpgsql(input jsonb) returns jsonb
language plpgsql immutable strict as $$
declare
  s jsonb := input -> 'schedule';
  tz text := s ->> 'time_zone';
  slot_minutes int := (s ->> 'slot_minutes')::int;
  slot_len interval := make_interval(mins => (s ->> 'slot_minutes')::int);
  align int := coalesce((s ->> 'slot_alignment_minutes')::int, (s ->> 'slot_minutes')::int);
  gap interval := make_interval(mins => greatest(coalesce((s ->> 'buffer_before_minutes')::int, 0),
                                                 coalesce((s ->> 'buffer_after_minutes')::int, 0)));
  now_ts timestamptz := (input ->> 'now')::timestamptz;
  earliest timestamptz := (input ->> 'now')::timestamptz + make_interval(mins => coalesce((s ->> 'min_notice_minutes')::int, 60));
  latest timestamptz := (input ->> 'now')::timestamptz + make_interval(days => coalesce((s ->> 'booking_horizon_days')::int, 60));
  w_from timestamptz := (input ->> 'from')::timestamptz;
  w_to timestamptz := (input ->> 'to')::timestamptz;
  busy tstzrange[] := array(select tstzrange((b ->> 'start')::timestamptz, (b ->> 'end')::timestamptz)
                              from jsonb_array_elements(coalesce(input -> 'busy', '[]')) b);
  d date;
  e jsonb;
  hours tsmultirange;
  iv tsrange;
  iv_start timestamptz;
  iv_end timestamptz;
  t timestamptz;
  m int;
  last_end timestamptz;
  out jsonb[] := '{}';
begin
  if w_to <= w_from then
    raise exception 'to: must be after from' using errcode = '22023';
  end if;
  if not coalesce((s ->> 'active')::boolean, true) or not coalesce((s ->> 'accepting_patients')::boolean, true) then
    return '[]';
  end if;
  for d in select g::date from generate_series((w_from at time zone tz)::date, (w_to at time zone tz)::date, interval '1 day') g loop
    -- The day's working hours: weekly hours valid that day, then the day's exceptions in order
    -- (extra hours added, time off taken out, a whole day off clears the day); merged.
    hours := coalesce((select range_agg(tsrange(d + (w ->> 'start_time')::time, d + (w ->> 'end_time')::time))
                         from jsonb_array_elements(s -> 'weekly') w
                        where (w ->> 'weekday')::int = extract(isodow from d)
                          and (w ->> 'valid_from' is null or (w ->> 'valid_from')::date <= d)
                          and (w ->> 'valid_until' is null or d <= (w ->> 'valid_until')::date)), '{}'::tsmultirange);
    for e in select x from jsonb_array_elements(s -> 'exceptions') x where (x ->> 'on_date')::date = d loop
      if e ->> 'kind' = 'extra_hours' then
        hours := hours + tsmultirange(tsrange(d + (e ->> 'start_time')::time, d + (e ->> 'end_time')::time));
      elsif e ->> 'start_time' is null then
        hours := '{}';
      else
        hours := hours - tsmultirange(tsrange(d + (e ->> 'start_time')::time, d + (e ->> 'end_time')::time));
      end if;
    end loop;
    foreach iv in array array(select unnest(hours)) loop
      iv_start := lower(iv) at time zone tz;
      iv_end := upper(iv) at time zone tz;
      continue when iv_start >= iv_end;
      t := greatest(iv_start, w_from);
      loop
        -- Align up: to the next whole minute, then to a multiple of `align` past local midnight.
        if date_trunc('minute', t) <> t then
          t := date_trunc('minute', t) + interval '1 minute';
        end if;
        for step in 1..8 loop
          m := (extract(hour from t at time zone tz) * 60 + extract(minute from t at time zone tz))::int % align;
          exit when m = 0;
          t := t + make_interval(mins => align - m);
        end loop;
        exit when t + slot_len > least(iv_end, w_to);
        if (last_end is null or last_end <= t)
           and t >= earliest and t <= latest
           and not exists (select 1 from unnest(busy) b where b && tstzrange(t - gap, t + slot_len + gap)) then
          out := out || jsonb_build_object('slot_start', t, 'slot_end', t + slot_len);
          last_end := t + slot_len;
          t := t + slot_len;
        else
          t := t + interval '1 minute';
        end if;
      end loop;
    end loop;
  end loop;
  return to_jsonb(out);
end
$$;
